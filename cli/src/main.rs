//! `edge-mfa`: the operator's command line.
//!
//!   edge-mfa check-config FILE...   check plugin configurations (JSON, YAML, Istio WasmPlugin
//!                                   manifests with several documents) with the filter's own parser
//!   edge-mfa oci WASM --out DIR [--tar FILE] [--tag TAG]
//!                                   write the module as a Wasm OCI image (layout + tar)

mod check;
mod oci;

use std::process::ExitCode;

const USAGE: &str = "usage:
  edge-mfa check-config FILE...            (FILE: plugin config JSON/YAML or Istio manifests; - for stdin)
  edge-mfa oci WASM --out DIR [--tar FILE] [--tag TAG]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-config") if args.len() > 1 => check::run(&args[1..]),
        Some("oci") => oci::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
