//! The load: wrk's command line, running it while accounting CPU, and parsing its report.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_harness::process::spawn_tied;

use crate::machine::{clk_tck, machine_busy, pinned, proc_cpu};
use crate::settings::Settings;

#[derive(Clone, Debug, Default)]
pub(crate) struct WrkResult {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: u64,
    pub(crate) non2xx: u64,
    pub(crate) socket_errors: String,
    /// CPU of the benchmarked Envoy, of wrk, and of everything else, in % of one core.
    pub(crate) envoy_cpu: f64,
    pub(crate) wrk_cpu: f64,
    pub(crate) other_cpu: f64,
}

pub(crate) fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix("m") {
        (n, 60_000_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * mul)
}

pub(crate) fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().ok()?;
            have_rps = true;
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_us = parse_duration_us(v)?;
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_us = parse_duration_us(v)?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non2xx = v.trim().parse().ok()?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.socket_errors = v.trim().to_string();
        } else if t.contains(" requests in ") {
            r.requests = t.split_whitespace().next()?.parse().ok()?;
        }
    }
    have_rps.then_some(r)
}

pub(crate) struct Load {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
}

pub(crate) fn wrk_args(s: &Settings, seconds: u64, load: &Load) -> Vec<String> {
    let mut a = vec![
        format!("-t{}", s.threads),
        format!("-c{}", s.connections),
        format!("-d{seconds}s"),
        "--latency".to_string(),
        "--timeout".to_string(),
        "5s".to_string(),
    ];
    for (k, v) in &load.headers {
        a.push("-H".into());
        a.push(format!("{k}: {v}"));
    }
    a.push(load.url.clone());
    a
}

/// Runs wrk for `seconds` (killed if it overruns by 30 s).
pub(crate) fn run_wrk(s: &Settings, seconds: u64, load: &Load, envoy_pid: Option<u32>) -> Result<WrkResult, String> {
    let mut cmd = pinned(s.client_cpu(), &s.wrk);
    cmd.args(wrk_args(s, seconds, load)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let busy0 = machine_busy();
    let envoy0 = envoy_pid.map(proc_cpu).unwrap_or(0);
    let t0 = Instant::now();
    let mut child = spawn_tied(cmd).map_err(|e| format!("cannot run {}: {e}", s.wrk))?;
    let pid = child.id();
    // Drain stdout on a thread so a chatty wrk cannot block.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        use std::io::Read;
        let _ = stdout.read_to_string(&mut o);
        let _ = stderr.read_to_string(&mut e);
        (o, e)
    });
    let deadline = t0 + Duration::from_secs(seconds + 30);
    let mut wrk_cpu_last = 0;
    let status = loop {
        // Sample wrk's CPU just before it exits (after that /proc/pid is gone or a zombie).
        let c = proc_cpu(pid);
        if c > 0 {
            wrk_cpu_last = c;
        }
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("wait for wrk: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("wrk overran its time limit; killed".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let busy = machine_busy().saturating_sub(busy0) as f64;
    let envoy = envoy_pid.map(proc_cpu).unwrap_or(0).saturating_sub(envoy0) as f64;
    let (out, err) = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("wrk failed ({status}):\n{out}{err}"));
    }
    let mut r = parse_wrk(&out).ok_or_else(|| format!("cannot parse wrk output:\n{out}{err}"))?;
    let tck = clk_tck();
    let pct = |j: f64| 100.0 * j / tck / elapsed;
    r.envoy_cpu = pct(envoy);
    r.wrk_cpu = pct(wrk_cpu_last as f64);
    r.other_cpu = pct((busy - envoy - wrk_cpu_last as f64).max(0.0));
    Ok(r)
}

/// Runs a prepared wrk command (its own arguments) and parses its report.
pub(crate) fn run_wrk_cmd(mut cmd: Command, seconds: u64) -> Result<WrkResult, String> {
    let _ = seconds;
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot parse wrk output: {text}"))
}

/// The benchmarked Envoy's CPU time per request, in µs.
pub(crate) fn cpu_us_per_req(r: &WrkResult) -> f64 {
    if r.rps > 0.0 {
        r.envoy_cpu / 100.0 / r.rps * 1e6
    } else {
        0.0
    }
}
