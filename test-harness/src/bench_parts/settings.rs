//! `make bench`'s knobs, read from the environment once (see the bench's module docs).

use std::path::PathBuf;

use test_harness::repo_root;

use crate::configs::{config_spec, DEFAULT_CONFIGS, DEFAULT_COUNT, LADDER};
use crate::machine::{cores, which};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Upstream {
    /// `direct_response` on the benchmarked route.
    Direct,
    /// Proxied to a second Envoy that answers with `direct_response`.
    Proxy,
}

pub(crate) struct Settings {
    pub(crate) seconds: u64,
    pub(crate) warmup: u64,
    pub(crate) connections: u32,
    pub(crate) threads: u32,
    pub(crate) runs: u32,
    /// One Envoy per configuration for all rounds (`BENCH_KEEP`).
    pub(crate) keep: bool,
    /// Warm-up seconds before each run of a kept Envoy after its first.
    pub(crate) rewarm: u64,
    pub(crate) configs: Vec<String>,
    pub(crate) upstream: Upstream,
    pub(crate) pin: bool,
    pub(crate) out: Option<PathBuf>,
    pub(crate) wrk: String,
    pub(crate) floor_wasm: PathBuf,
    /// Seconds to wait, before each run, for other processes to go quiet.
    pub(crate) quiet_wait: u64,
    /// Cold-path samples (users / sign-ins); 0 skips the cold paths.
    pub(crate) cold_n: usize,
    /// Seconds per store throughput run; 0 skips it.
    pub(crate) store_seconds: u64,
    /// Whether to measure the Wasm VM's memory per worker.
    pub(crate) memory: bool,
    /// Configurations also counted under callgrind after the wrk runs (`BENCH_COUNT`).
    pub(crate) count: Vec<String>,
}

pub(crate) fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub(crate) fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match env_str(name) {
        None => default,
        Some(v) => v.trim().parse().unwrap_or_else(|_| die(&format!("{name}={v:?} is not a number"))),
    }
}

pub(crate) fn die(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(2);
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        let cores = cores();
        let configs: Vec<String> = env_str("BENCH_CONFIGS")
            .unwrap_or_else(|| DEFAULT_CONFIGS.into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for c in &configs {
            if config_spec(c).is_none() {
                die(&format!(
                    "unknown configuration {c:?} in BENCH_CONFIGS (a, b, c, d, e, e-norevoke, c-nocache, d-cache, e-jwt, e-challenge, e-challenge-store, {})",
                    LADDER.join(", ")
                ));
            }
        }
        let upstream = match env_str("BENCH_UPSTREAM").as_deref() {
            None | Some("direct") => Upstream::Direct,
            Some("proxy") => Upstream::Proxy,
            Some(o) => die(&format!("BENCH_UPSTREAM={o:?}: use direct or proxy")),
        };
        let pin = env_num("BENCH_PIN", 1u32) != 0 && cores >= 2 && which("taskset").is_some();
        let out = match std::env::var("BENCH_OUT") {
            Ok(v) if v.trim().is_empty() => None,
            Ok(v) => Some(PathBuf::from(v)),
            Err(_) => Some(repo_root().join("docs").join("bench.md")),
        };
        let floor_wasm = env_str("EDGE_MFA_FLOOR_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("build").join("edge_mfa_floor.wasm"));
        let s = Settings {
            seconds: env_num("BENCH_SECONDS", 3u64).max(1),
            warmup: env_num("BENCH_WARMUP", 3u64),
            connections: env_num("BENCH_CONNECTIONS", 32u32).max(1),
            threads: env_num("BENCH_THREADS", 1u32).max(1),
            runs: env_num("BENCH_RUNS", 2u32).max(1),
            keep: env_num("BENCH_KEEP", 1u32) != 0,
            rewarm: env_num("BENCH_REWARM", 1u64),
            configs,
            upstream,
            pin,
            out,
            wrk: env_str("BENCH_WRK").unwrap_or_else(|| "wrk".into()),
            floor_wasm,
            quiet_wait: env_num("BENCH_QUIET_WAIT", 10u64),
            cold_n: env_num("BENCH_COLD_N", 30usize),
            store_seconds: env_num("BENCH_STORE_SECONDS", 5u64),
            memory: env_num("BENCH_MEMORY", 1u32) != 0,
            count: std::env::var("BENCH_COUNT")
                .unwrap_or_else(|_| DEFAULT_COUNT.into())
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        };
        for c in &s.count {
            if config_spec(c).is_none() {
                die(&format!("unknown configuration {c:?} in BENCH_COUNT"));
            }
        }
        if s.connections < s.threads {
            die("BENCH_CONNECTIONS must be >= BENCH_THREADS");
        }
        s
    }

    pub(crate) fn envoy_cpu(&self) -> Option<&'static str> {
        self.pin.then_some("0")
    }

    pub(crate) fn client_cpu(&self) -> Option<&'static str> {
        self.pin.then_some("1")
    }
}
