//! Module size and the Wasm VM's memory per worker.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use test_harness::http;
use test_harness::process::{envoy_allocated_bytes, rss_kib};

use crate::configs::{bench_bootstrap, config_spec, placeholder_ports, Ctx, Spec};
use crate::envoy::Envoy;

/// Bytes of a file, or 0.
pub(crate) fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn module_sizes(edge: &Path, floor: &Path) -> String {
    let mut o = String::from("## Module size\n\n");
    let _ = writeln!(o, "| module | bytes |\n| --- | ---: |");
    let _ = writeln!(o, "| edge-mfa (`{}`) | {} |", edge.display(), size(edge));
    let _ = writeln!(o, "| floor (`{}`) | {} |", floor.display(), size(floor));
    let _ = writeln!(
        o,
        "\nCommand: `scripts/build-wasm && wc -c build/edge_mfa.wasm` (profile `release-wasm`: LTO, the filter and \
         the per-request crates at opt-level 3, cold-path dependencies at \"z\"; `-Cpanic=immediate-abort` on \
         Debian's toolchain; then `wasm-opt -Oz --converge` when binaryen is installed; see scripts/build-wasm). Target: ≤ \
         600 KB (600,000 bytes). `EDGE_MFA_WASM_PROFILE=release-small scripts/build-wasm` builds the smaller, \
         slower variant (Cargo.toml); bench/README.md, \"Module size\", has what weighs what."
    );
    o
}

/// One Envoy with `workers` workers for `spec`: (VmRSS KiB, allocated KiB) after some requests.
pub(crate) fn envoy_memory(
    spec: &Spec,
    ctx: &Ctx,
    dir: &Path,
    base_id: u32,
    workers: u32,
    headers: &[(&str, &str)],
) -> (u64, u64) {
    let boot = placeholder_ports(bench_bootstrap(spec, ctx));
    let name = format!("mem-{}-{workers}", spec.id);
    let envoy = Envoy::start_with(&name, dir, &boot, None, base_id, workers);
    // Let every worker see traffic (keys fetched, contexts created), then settle.
    for _ in 0..50 {
        let _ = http::try_raw(&envoy.url(""), "GET", "/app", headers, b"");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = envoy.pid().unwrap_or(0);
    (rss_kib(pid), envoy_allocated_bytes(&format!("http://127.0.0.1:{}", envoy.admin)) / 1024)
}

/// Workers in the second Envoy of the memory measurement.
pub(crate) const WORKERS: u32 = 4;

/// Reads an unsigned LEB128 at `*at`.
pub(crate) fn leb(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The initial size (pages of 64 KiB) of a module's own linear memory (memory section, id 5).
pub(crate) fn initial_memory_pages(wasm: &[u8]) -> Option<u64> {
    let mut at = 8; // magic + version
    while at < wasm.len() {
        let id = *wasm.get(at)?;
        at += 1;
        let len = leb(wasm, &mut at)? as usize;
        if id == 5 {
            let mut p = at;
            let _count = leb(wasm, &mut p)?;
            let _flags = leb(wasm, &mut p)?;
            return leb(wasm, &mut p);
        }
        at += len;
    }
    None
}

/// The Wasm VM's memory per worker: RSS with 2 workers minus RSS with 1, minus the same
/// difference without any filter (a worker's own cost).
pub(crate) fn vm_memory(ctx: &Ctx, dir: &Path, base_id: u32, session_headers: &[(&str, &str)]) -> String {
    let mut o = String::from("## Wasm VM memory per worker\n\n");
    let mut rows = vec![];
    for id in ["a", "b", "e"] {
        let Some(spec) = config_spec(id) else { continue };
        let one = envoy_memory(spec, ctx, dir, base_id, 1, session_headers);
        let two = envoy_memory(spec, ctx, dir, base_id + 1, WORKERS, session_headers);
        rows.push((spec, one, two));
    }
    let worker_cost = |r: &(&Spec, (u64, u64), (u64, u64))| (r.2 .0 as i64 - r.1 .0 as i64) / (WORKERS as i64 - 1);
    let base = rows.iter().find(|r| r.0.id == "a").map(worker_cost).unwrap_or(0);
    let _ = writeln!(
        o,
        "| config | RSS, 1 worker | RSS, {WORKERS} workers | + per worker | of which the Wasm VM | Envoy heap (`/memory` allocated), 1 → {WORKERS} workers |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let per = worker_cost(r);
        let vm = if r.0.id == "a" { "–".to_string() } else { format!("{} KiB", per - base) };
        let _ = writeln!(
            o,
            "| ({}) {} | {} KiB | {} KiB | {per} KiB | {vm} | {} → {} KiB |",
            r.0.id, r.0.title, r.1 .0, r.2 .0, r.1 .1, r.2 .1
        );
    }
    let _ = writeln!(
        o,
        "\nHow: each configuration's Envoy is started with `--concurrency 1` and `--concurrency {WORKERS}`, \
         gets 50 requests, and its `VmRSS` (/proc/PID/status) is read 1.5 s later; a worker's cost is the \
         difference over {} extra workers, and the Wasm VM's share is that minus the same for (a). Envoy \
         clones one VM per worker from the main thread's, sharing the compiled module; what each worker \
         adds is mostly its instance's linear memory. V8 keeps that outside Envoy's heap, so `/memory` \
         barely moves. Single samples: expect some 100 KiB of noise per worker.",
        WORKERS - 1
    );
    for (name, path) in [("edge-mfa", &ctx.edge_wasm), ("floor", &ctx.floor_wasm)] {
        if let Some(pages) = std::fs::read(path).ok().and_then(|b| initial_memory_pages(&b)) {
            let _ = writeln!(
                o,
                "\n{name}: the module declares {pages} initial pages of linear memory ({} KiB) per instance, \
                 i.e. per worker.",
                pages * 64
            );
        }
    }
    o
}
