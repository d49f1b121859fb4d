//! Child processes of the harness, the bench and the soak: spawning them tied to this process
//! (they die with it), logging to a file, stopping them, free loopback ports, reading logs and
//! a process's memory. One copy, shared by [`Stack`](crate::Stack), `bench` and `soak`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a child gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Spawns `cmd` with `PR_SET_PDEATHSIG=SIGTERM`, so children die with this process even if it
/// is killed or a `Stack` is leaked in a static. The death signal fires when the spawning
/// *thread* exits, hence one long-lived spawner thread.
pub fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("edge-mfa-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let parent = unsafe { libc::getpid() };
                    unsafe {
                        cmd.pre_exec(move || {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                            if libc::getppid() != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn edge-mfa-spawner thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, rtx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rrx.recv().map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

/// Spawns `cmd` tied to this process (see [`spawn_tied`]) with stdin closed and stdout and
/// stderr appended to `log`. Panics, naming `what`, if it cannot start.
pub fn spawn_logged(what: &str, mut cmd: Command, log: &Path) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out.try_clone().expect("clone log handle");
    cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err));
    let desc = format!("{:?}", cmd.get_program());
    spawn_tied(cmd).unwrap_or_else(|e| panic!("failed to start {what} ({desc}): {e}"))
}

/// SIGTERM, wait up to 5 s, then SIGKILL; always reaps.
pub fn stop_child(mut c: Child) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    unsafe {
        libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A loopback port that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> u16 {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let used = USED.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let p = l.local_addr().expect("local_addr").port();
        if used.lock().unwrap_or_else(|e| e.into_inner()).insert(p) {
            return p;
        }
    }
    panic!("no free loopback port");
}

/// Whether the Envoy whose admin interface is at `admin` (`http://127.0.0.1:PORT`) says it is
/// ready (`GET /ready` answers 200 `LIVE`).
pub fn envoy_live(admin: &str) -> bool {
    matches!(crate::http::try_raw(admin, "GET", "/ready", &[], b""), Ok(r) if r.status == 200 && r.body.contains("LIVE"))
}

/// Size of a file in bytes, or 0.
pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// A whole file as text (lossy), or "" when it cannot be read.
pub fn read_lossy(p: &Path) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// A file from byte `offset` on, as text (lossy).
pub fn read_from(p: &Path, offset: u64) -> String {
    let Ok(mut f) = File::open(p) else {
        return String::new();
    };
    let mut b = Vec::new();
    if f.seek(SeekFrom::Start(offset)).is_ok() {
        let _ = f.read_to_end(&mut b);
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// The last `n` bytes of a log, marked `[...]` when cut.
pub fn tail(p: &Path, n: u64) -> String {
    let len = file_len(p);
    let s = read_from(p, len.saturating_sub(n));
    if len > n {
        format!("[...]{s}")
    } else {
        s
    }
}

/// Resident memory of a process in KiB (`VmRSS` of /proc/PID/status), or 0.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Envoy's own heap in bytes (`allocated` of the admin `/memory` endpoint at `admin`,
/// `http://127.0.0.1:PORT`), or 0.
pub fn envoy_allocated_bytes(admin: &str) -> u64 {
    let r = crate::http::get(&format!("{admin}/memory"), &[]);
    serde_json::from_str::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["allocated"].as_str().and_then(|a| a.parse::<u64>().ok()))
        .unwrap_or(0)
}
