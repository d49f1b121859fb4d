//! The benchmarked Envoys: one process per configuration and run, on fresh loopback ports.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_harness::envoy_command;
use test_harness::http;
use test_harness::process::{envoy_live, free_port, spawn_logged, stop_child, tail};

use crate::machine::pinned;

const ENVOY_READY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Envoy {
    pub(crate) child: Option<Child>,
    pub(crate) listen: u16,
    pub(crate) admin: u16,
    pub(crate) log: PathBuf,
}

impl Envoy {
    pub(crate) fn start(name: &str, dir: &Path, bootstrap: &Value, cpu: Option<&str>, base_id: u32) -> Envoy {
        Self::start_with(name, dir, bootstrap, cpu, base_id, 1)
    }

    pub(crate) fn start_with(
        name: &str,
        dir: &Path,
        bootstrap: &Value,
        cpu: Option<&str>,
        base_id: u32,
        workers: u32,
    ) -> Envoy {
        let listen = free_port();
        let admin = free_port();
        let text = bootstrap
            .to_string()
            .replace("\"__LISTEN__\"", &listen.to_string())
            .replace("\"__ADMIN__\"", &admin.to_string());
        let cfg = dir.join(format!("{name}.json"));
        fs::write(&cfg, text).expect("write envoy config");
        let log = dir.join(format!("{name}.log"));
        let envoy = envoy_command();
        let mut cmd = pinned(cpu, &envoy[0]);
        cmd.args(&envoy[1..])
            .arg("-c")
            .arg(&cfg)
            .arg("--concurrency")
            .arg(workers.to_string())
            .arg("--base-id")
            .arg(base_id.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg("warn")
            .arg("--log-path")
            .arg(&log)
            .current_dir(dir);
        let child = spawn_logged(&format!("envoy {name}"), cmd, &log);
        let mut e = Envoy { child: Some(child), listen, admin, log };
        e.wait_ready(name);
        e
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.listen, path)
    }

    pub(crate) fn wait_ready(&mut self, name: &str) {
        let deadline = Instant::now() + ENVOY_READY_TIMEOUT;
        let admin = format!("http://127.0.0.1:{}", self.admin);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("envoy {name} exited during startup ({st}):\n{}", tail(&self.log, 4096));
            }
            if envoy_live(&admin) {
                let base = format!("http://127.0.0.1:{}", self.listen);
                if http::try_raw(&base, "GET", "/", &[], b"").is_ok() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("envoy {name} not ready in time:\n{}", tail(&self.log, 4096));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

pub(crate) fn envoy_version() -> String {
    let envoy = envoy_command();
    let out = Command::new(&envoy[0]).args(&envoy[1..]).arg("--version").stdin(Stdio::null()).output();
    match out {
        Ok(o) => {
            let s = String::from_utf8_lossy(&o.stdout).to_string();
            s.lines()
                .find_map(|l| l.split_once("version:").map(|(_, v)| v.trim().to_string()))
                .unwrap_or_else(|| s.trim().to_string())
        }
        Err(e) => format!("unknown ({e})"),
    }
}
