//! `edge-mfa-store`: the reference store service for the edge-mfa Envoy filter.

mod api;
mod cli;
mod crypto;
mod db;
mod django;
mod email_template;
mod import_django;
mod logging;
mod transport;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
