//! The machine under the bench: cores, pinning, and CPU accounting from /proc (what the
//! benchmarked Envoy, wrk and everything else used).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}

/// `taskset -c CPU prog` when pinning, else `prog`.
pub(crate) fn pinned(cpu: Option<&str>, prog: &str) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(prog);
            cmd
        }
        None => Command::new(prog),
    }
}

/// How many cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Busy jiffies of the whole machine (all cores), from /proc/stat.
pub(crate) fn machine_busy() -> u64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    get(0) + get(1) + get(2) + get(5) + get(6) + get(7)
}

/// utime + stime (jiffies, all threads) of a process.
pub(crate) fn proc_cpu(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

pub(crate) fn clk_tck() -> f64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Waits up to `max` for the machine to be quiet (under 20% of one core busy over 1 s,
/// with the benchmarked Envoy idle); returns the last busy figure (% of one core).
pub(crate) fn wait_quiet(max: Duration) -> f64 {
    let deadline = Instant::now() + max;
    let mut said = false;
    loop {
        let b0 = machine_busy();
        std::thread::sleep(Duration::from_millis(1000));
        let busy = 100.0 * machine_busy().saturating_sub(b0) as f64 / clk_tck();
        if busy < 20.0 || Instant::now() >= deadline {
            if said {
                eprintln!("bench: machine busy {busy:.0}% of a core; going on");
            }
            return busy;
        }
        if !said {
            eprintln!(
                "bench: machine busy ({busy:.0}% of a core used by other processes); waiting up to {}s",
                max.as_secs()
            );
            said = true;
        }
    }
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
