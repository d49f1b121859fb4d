//! Command line: `serve` plus the admin commands that operate on the database
//! directly (they are safe to run next to a live server; SQLite serializes).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::api;
use crate::crypto::{MasterKey, TokenCheck};
use crate::db::{self, Pool};

#[derive(Parser, Debug)]
#[command(
    name = "edge-mfa-store",
    version,
    about = "Reference store for edge-mfa: MFA factors, TOTP replay state and session keys"
)]
pub struct Cli {
    /// SQLite database file.
    #[arg(
        long,
        global = true,
        env = "EDGE_MFA_STORE_DB",
        default_value = "edge-mfa-store.db"
    )]
    pub db: PathBuf,

    /// Master key: base64 of 32 bytes. Needed by `serve` and `keys rotate`.
    /// Prefer the environment variable; flags are visible in process lists.
    #[arg(
        long,
        global = true,
        env = "EDGE_MFA_STORE_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP/JSON store.
    Serve(ServeArgs),
    /// Inspect or reset users' factors.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect or rotate session-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EDGE_MFA_STORE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,

    /// Bearer token the filter must send. Prefer the environment variable.
    #[arg(long, env = "EDGE_MFA_STORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Users with factors, one per line: `<user>\t<factor count>`.
    List,
    /// A user's factors as JSON, without secrets.
    Show { user: String },
    /// Delete all of a user's factors (they will have to enroll again).
    Reset { user: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Key ids, signing key first: `<kid>\tsigning|verify`.
    List,
    /// Add a new random signing key; keeps at most 3 keys.
    Rotate,
}

fn master_key(key: Option<&str>) -> Result<MasterKey, String> {
    match key {
        Some(k) if !k.trim().is_empty() => MasterKey::from_base64(k),
        _ => Err(
            "EDGE_MFA_STORE_KEY is required (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
                .into(),
        ),
    }
}

fn open(path: &Path) -> Result<Pool, String> {
    Pool::open(path).map_err(|e| e.to_string())
}

/// Renders a user name for a terminal: control characters escaped.
fn printable(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, cli.key.as_deref(), args),
        Command::Users(cmd) => users(&cli.db, cmd),
        Command::Keys(cmd) => keys(&cli.db, cli.key.as_deref(), cmd),
    }
}

fn serve(db_path: &Path, key: Option<&str>, args: ServeArgs) -> Result<(), String> {
    let key = master_key(key)?;
    let token = match args.token.as_deref() {
        Some(t) if !t.is_empty() => TokenCheck::new(t),
        _ => {
            return Err(
                "EDGE_MFA_STORE_TOKEN is required (the bearer token the filter sends)".into(),
            )
        }
    };
    let pool = open(db_path)?;
    pool.with(|c| db::verify_master_key(c, &key))
        .map_err(|e| e.to_string())?;
    if let Some(kid) = pool
        .with(|c| db::add_session_key(c, &key, true))
        .map_err(|e| e.to_string())?
    {
        eprintln!("edge-mfa-store: created session key {kid}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(api::serve(api::AppState { pool, key, token }, &args.listen))
}

fn users(db_path: &Path, cmd: UsersCommand) -> Result<(), String> {
    let pool = open(db_path)?;
    match cmd {
        UsersCommand::List => {
            let users = pool
                .with(|c| db::list_users(c))
                .map_err(|e| e.to_string())?;
            for (user, count) in users {
                println!("{}\t{count}", printable(&user));
            }
        }
        UsersCommand::Show { user } => {
            let factors = pool
                .with(|c| db::list_factors(c, &user, None))
                .map_err(|e| e.to_string())?;
            let factors: Vec<serde_json::Value> = factors
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "id": f.id,
                        "type": f.kind,
                        "name": f.name,
                        "enabled": f.enabled,
                        "added_at": f.added_at,
                        "last_used_at": f.last_used_at,
                        "params": f.params,
                        "last_step": f.last_step,
                    })
                })
                .collect();
            let out = serde_json::json!({"user": user, "factors": factors});
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
            );
        }
        UsersCommand::Reset { user } => {
            let n = pool
                .with(|c| db::reset_user(c, &user))
                .map_err(|e| e.to_string())?;
            println!("deleted {n} factor(s) of {}", printable(&user));
        }
    }
    Ok(())
}

fn keys(db_path: &Path, key: Option<&str>, cmd: KeysCommand) -> Result<(), String> {
    match cmd {
        KeysCommand::List => {
            let pool = open(db_path)?;
            let kids = pool.with(|c| db::list_kids(c)).map_err(|e| e.to_string())?;
            for (i, kid) in kids.iter().enumerate() {
                println!("{kid}\t{}", if i == 0 { "signing" } else { "verify" });
            }
        }
        KeysCommand::Rotate => {
            let key = master_key(key)?;
            let pool = open(db_path)?;
            pool.with(|c| db::verify_master_key(c, &key))
                .map_err(|e| e.to_string())?;
            let kid = pool
                .with(|c| db::add_session_key(c, &key, false))
                .map_err(|e| e.to_string())?
                .ok_or("no key created")?;
            println!("{kid}");
        }
    }
    Ok(())
}
