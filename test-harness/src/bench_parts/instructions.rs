//! `BENCH_INSTRUCTIONS=1`: each configuration's cost as instructions per request, counted by
//! valgrind's callgrind in the benchmarked Envoy (its own code, V8's builtins and the Wasm code
//! V8 compiled). Unlike CPU time on a shared 2-core VM, whose runs differ by 10-25 %, the count
//! repeats to about 0.3 %, so a rung's price of one host call (a few thousand instructions) can
//! be read from one run. It does not see the kernel's share (the sockets), which is the same
//! for every configuration. Slow (valgrind runs Envoy ~50 times slower): about 2.5 minutes per
//! configuration, two at a time.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_harness::envoy_command;
use test_harness::process::free_port;

/// Requests before counting (V8 tiers the Wasm code up) and counted.
pub(crate) const WARM_UP: usize = 3000;
pub(crate) const COUNTED: usize = 2000;

/// The Envoy binary valgrind runs: `BENCH_VALGRIND_ENVOY`, else `ENVOY_BIN`'s, else, when that
/// is the PyPI wheel's Python launcher, the binary the wheel ships.
pub(crate) fn envoy_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BENCH_VALGRIND_ENVOY") {
        return Some(PathBuf::from(p));
    }
    let first = PathBuf::from(envoy_command().first()?);
    let head = fs::read(&first).ok()?;
    if !head.starts_with(b"#!") {
        return Some(first);
    }
    // .venv/bin/envoy -> .venv/lib/python3.X/site-packages/envoy/_bin/envoy
    let venv = first.parent()?.parent()?;
    fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
}

/// Instructions per request of one configuration (`boot`: its bootstrap with `__LISTEN__` and
/// `__ADMIN__` placeholders), every answer required to have `status` (200; the challenge page's
/// 401).
pub(crate) fn per_request(
    name: &str,
    dir: &Path,
    boot: &Value,
    base_id: u32,
    headers: &[(String, String)],
    path: &str,
    status: u16,
) -> Result<f64, String> {
    let envoy = envoy_binary().ok_or("no Envoy binary for valgrind (set BENCH_VALGRIND_ENVOY)")?;
    let (listen, admin) = (free_port(), free_port());
    let text =
        boot.to_string().replace("\"__LISTEN__\"", &listen.to_string()).replace("\"__ADMIN__\"", &admin.to_string());
    let cfg = dir.join(format!("cg-{name}.json"));
    fs::write(&cfg, text).map_err(|e| e.to_string())?;
    let out = dir.join(format!("cg-{name}.out"));
    let log = fs::File::create(dir.join(format!("cg-{name}.log"))).map_err(|e| e.to_string())?;
    // `BENCH_CG_HOLD=<dir>` (scripts/profile-wasm): counts by instruction address, and keeps
    // Envoy alive after the count so that its code can be read (bench/wasm_profile.py).
    let hold = std::env::var_os("BENCH_CG_HOLD").map(PathBuf::from);
    let mut valgrind = Command::new("valgrind");
    valgrind.arg("--tool=callgrind").arg("--smc-check=all");
    if hold.is_some() {
        valgrind.arg("--dump-instr=yes");
    }
    let child = valgrind
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&envoy)
        .args(["-c", &cfg.display().to_string(), "--concurrency", "1", "--disable-hot-restart"])
        .args(["--base-id", &base_id.to_string(), "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("valgrind: {e}"))?;
    let mut guard = Killed(Some(child));
    let pid = guard.0.as_ref().map(Child::id).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(400);
    let mut conn = loop {
        if let Ok(mut c) = Keepalive::connect(listen) {
            if c.get(path, headers).is_ok() {
                break c;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("({name}) Envoy under valgrind not ready in 400 s"));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut run = |n: usize| -> Result<(), String> {
        for _ in 0..n {
            let got = conn.get(path, headers).map_err(|e| format!("({name}) {e}"))?;
            if got != status {
                return Err(format!("({name}) answered {got}, not {status}"));
            }
        }
        Ok(())
    };
    run(WARM_UP)?;
    control(&["-z", &pid.to_string()])?;
    run(COUNTED)?;
    control(&["-d", &pid.to_string()])?;
    // The dump is written asynchronously (at the next event the tool handles).
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(total) = fs::read_to_string(&dump).ok().and_then(|t| totals(&t)) {
            if let Some(dir) = &hold {
                hold_for_reading(dir, name, pid, &dump);
            }
            if let Some(c) = guard.0.take() {
                stop(c);
            }
            return Ok(total as f64 / COUNTED as f64);
        }
        if Instant::now() > deadline {
            return Err(format!("({name}) no callgrind dump at {}", dump.display()));
        }
        // Nudge: the dump request is served when Envoy next wakes up.
        let _ = conn.get(path, headers);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes `<dir>/<name>.hold` ("pid dump counted-requests") and waits, at most 15 minutes,
/// until whoever reads the process's code removes it.
fn hold_for_reading(dir: &Path, name: &str, pid: u32, dump: &Path) {
    let flag = dir.join(format!("{name}.hold"));
    if fs::write(&flag, format!("{pid} {} {COUNTED}\n", dump.display())).is_err() {
        return;
    }
    eprintln!("bench: ({name}) held for reading: {}", flag.display());
    let deadline = Instant::now() + Duration::from_secs(900);
    while flag.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The sum of a callgrind dump's `totals:` (or `summary:`) line.
fn totals(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:"))?.trim().parse().ok())
}

fn control(args: &[&str]) -> Result<(), String> {
    let ok = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("callgrind_control: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("callgrind_control {args:?} failed"))
    }
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            stop(c);
        }
    }
}

/// One HTTP/1.1 connection kept alive (a new connection per request would price the accept).
struct Keepalive {
    reader: BufReader<TcpStream>,
}

impl Keepalive {
    fn connect(port: u16) -> std::io::Result<Keepalive> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Keepalive { reader: BufReader::new(s) })
    }

    /// The status of `GET path`; the body is read and dropped.
    fn get(&mut self, path: &str, headers: &[(String, String)]) -> std::io::Result<u16> {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.reader.get_mut().write_all(req.as_bytes())?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().map_err(|_| bad("content-length"))?;
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(status)
    }
}
