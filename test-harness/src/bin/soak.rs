//! `make soak`: the hot path at saturation for minutes, across 2 Envoy workers, with valid
//! sessions. Reports errors (must be 0), Envoy's memory over time (must stay flat: the Wasm VMs
//! live inside Envoy's process, so its RSS is what a leak in the filter would grow), and the
//! store's health before and after.
//!
//! Env: SOAK_SECONDS (default 300), SOAK_CONNECTIONS (default 32), SOAK_SAMPLE_S (default 10).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};
use test_harness::process::{envoy_allocated_bytes, rss_kib, spawn_tied};
use test_harness::{http, Stack, StackOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let seconds = env_u64("SOAK_SECONDS", 300);
    let conns = env_u64("SOAK_CONNECTIONS", 32);
    let sample = env_u64("SOAK_SAMPLE_S", 10).max(1);
    let stack = Stack::start(StackOptions { concurrency: 2, ..StackOptions::default() });
    // A real session: enroll TOTP through the JSON API.
    let (_, id, session) = stack.enroll_totp("soak");
    let cookies = format!("{id}; {session}");
    let check = http::get(&stack.url("/app"), &[("cookie", &cookies)]);
    assert_eq!(check.json()["headers"]["x-mfa-user"], "soak", "the soak must measure passes, not challenges");
    let pid = stack.envoy_pid().expect("envoy pid");
    let store_before = http::get(&format!("{}/v1/health", stack.store_url), &[]).status;

    let mut wrk = Command::new("wrk");
    wrk.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "--latency",
        "-H",
        &format!("cookie: {cookies}"),
    ])
    .arg(stack.url("/app"));
    wrk.stdout(std::process::Stdio::piped());
    let child = spawn_tied(wrk).expect("wrk (apt-get install wrk)");
    let start = Instant::now();
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        samples.push((start.elapsed().as_secs(), rss_kib(pid), envoy_allocated_bytes(&stack.admin)));
        std::thread::sleep(Duration::from_secs(sample));
    }
    let out = child.wait_with_output().expect("wrk output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    samples.push((start.elapsed().as_secs(), rss_kib(pid), envoy_allocated_bytes(&stack.admin)));
    let store_after = http::get(&format!("{}/v1/health", stack.store_url), &[]).status;

    let grab = |key: &str| text.lines().find(|l| l.trim_start().starts_with(key)).map(|l| l.trim().to_string());
    let requests = grab("Requests/sec:").unwrap_or_default();
    let non2xx = grab("Non-2xx or 3xx responses:").unwrap_or_else(|| "Non-2xx or 3xx responses: 0".into());
    let socket = grab("Socket errors:").unwrap_or_else(|| "Socket errors: none".into());
    let total = text.lines().find(|l| l.contains("requests in")).unwrap_or("").trim().to_string();
    // Memory: compare the mean of the first and last thirds (after a warm-up sample).
    let rss: Vec<u64> = samples.iter().skip(1).map(|s| s.1).collect();
    let third = (rss.len() / 3).max(1);
    let mean = |xs: &[u64]| xs.iter().sum::<u64>() as f64 / xs.len().max(1) as f64;
    let (early, late) = (mean(&rss[..third.min(rss.len())]), mean(&rss[rss.len().saturating_sub(third)..]));
    let growth = if early > 0.0 { (late - early) / early * 100.0 } else { 0.0 };

    let mut md = String::new();
    let _ = writeln!(md, "# Soak: {seconds} s at saturation, 2 Envoy workers, valid sessions\n");
    let _ = writeln!(md, "Command: `make soak` (SOAK_SECONDS={seconds}, wrk -t2 -c{conns}), {}\n", chrono_like());
    let _ = writeln!(md, "- wrk: {total}; {requests}");
    let _ = writeln!(md, "- errors: {non2xx}; {socket}");
    let _ = writeln!(md, "- Envoy RSS (KiB), first third vs last third mean: {early:.0} → {late:.0} ({growth:+.2} %)");
    let _ = writeln!(md, "- store /v1/health before/after: {store_before}/{store_after}\n");
    let _ = writeln!(md, "| t (s) | Envoy RSS (KiB) | Envoy heap allocated (bytes) |\n| ---: | ---: | ---: |");
    for (t, r, a) in &samples {
        let _ = writeln!(md, "| {t} | {r} | {a} |");
    }
    println!("{md}");
    let _ = std::fs::write(test_harness::repo_root().join("bench/soak-results.md"), &md);
    let errors_zero = non2xx.ends_with(": 0") && socket.contains("none");
    if !errors_zero || store_after != 200 {
        eprintln!("soak FAILED: errors or store unhealthy");
        std::process::exit(1);
    }
}

fn chrono_like() -> String {
    Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
