//! Command line: `serve` plus the admin commands that operate on the database
//! directly (they are safe to run next to live servers: writes are transactions
//! that serialize like the server's own).

use clap::{Args, Parser, Subcommand};

use crate::api;
use crate::crypto::{MasterKey, TokenCheck};
use crate::db::{self, Pool};
use crate::email_template::EmailTemplate;
use crate::transport::Transports;

#[derive(Parser, Debug)]
#[command(
    name = "edge-mfa-store",
    version,
    about = "Reference store for edge-mfa: MFA factors, replay state, trusted devices, bans and session keys"
)]
pub struct Cli {
    /// Database: a SQLite file path (created if missing) or a
    /// `postgres://user:password@host:port/dbname` URL shared by several store replicas.
    #[arg(long, global = true, env = "EDGE_MFA_STORE_DB", default_value = "edge-mfa-store.db", hide_env_values = true)]
    pub db: String,

    /// Master key: base64 of 32 bytes. Needed by `serve` and `keys rotate`.
    /// Prefer the environment variable; flags are visible in process lists.
    #[arg(long, global = true, env = "EDGE_MFA_STORE_KEY", hide_env_values = true)]
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
    /// Manage individual factors (as an administrator).
    #[command(subcommand)]
    Factors(FactorsCommand),
    /// A user's audit log, newest first: `<at>\t<event>\t<actor>\t<factor id>\t<detail>`.
    Audit {
        user: String,
        /// How many events to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Inspect or revoke trusted devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Inspect or lift brute-force bans.
    #[command(subcommand)]
    Bans(BansCommand),
    /// Import django-mfa2's `mfa_user_keys` (TOTP, FIDO2, U2F, recovery codes,
    /// email) into this store; safe to run twice. See docs/migrating-from-django-mfa2.md.
    ImportDjango {
        /// The Django database: a SQLite file or a `postgres://` URL (read only).
        django_db: String,
        /// Print per user what would be imported and why anything is skipped; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// End sessions server-side (every Envoy worker refuses them within seconds).
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// End every session of a user issued until now.
    Revoke {
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FactorsCommand {
    /// Mark a factor as owned by the enterprise (users cannot delete or
    /// disable it themselves) or release it.
    Enterprise {
        user: String,
        id: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Delete a factor, enterprise-owned or not.
    Delete { user: String, id: String },
}

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// Live devices: `<id>\t<added_at>\t<last_used_at or ->\t<expires_at>\t<user agent>`.
    List { user: String },
    /// Revoke one device.
    Revoke { user: String, id: String },
}

#[derive(Subcommand, Debug)]
pub enum BansCommand {
    /// Active bans: `<user|ip>\t<subject>\t<until>`.
    List,
    /// Lift the bans on a user name or IP address and forget its failures.
    Lift { subject: String },
}

/// Actor recorded in the audit log for admin commands.
const ADMIN: &str = "admin";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EDGE_MFA_STORE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,

    /// Bearer token the filter must send. Prefer the environment variable.
    #[arg(long, env = "EDGE_MFA_STORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// HTML template of the email carrying a one-time code (django-mfa2's
    /// mfa_email_token_template.html); `X.txt` beside `X.html`, if present, is its
    /// plain-text part. Placeholders: {{ user }}, {{ otp }}, {{ expires_in }}, {{ site }}.
    /// Default: the built-in, localized plain-text message.
    #[arg(long, env = "EDGE_MFA_STORE_EMAIL_TEMPLATE")]
    pub email_template: Option<String>,

    /// Email/SMS codes sent per user within `--otp-send-window-s`; past it, 429.
    #[arg(long, env = "EDGE_MFA_STORE_OTP_SENDS_PER_USER", default_value_t = 5,
          value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub otp_sends_per_user: i64,

    /// Email/SMS codes sent to one address within `--otp-send-window-s`; past it, 429.
    #[arg(long, env = "EDGE_MFA_STORE_OTP_SENDS_PER_ADDRESS", default_value_t = 5,
          value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub otp_sends_per_address: i64,

    /// The sliding window of the send limits, in seconds.
    #[arg(long, env = "EDGE_MFA_STORE_OTP_SEND_WINDOW_S", default_value_t = 900,
          value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub otp_send_window_s: i64,
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
        _ => Err("EDGE_MFA_STORE_KEY is required (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)".into()),
    }
}

fn open(db: &str) -> Result<Pool, String> {
    Pool::open(db).map_err(|e| e.to_string())
}

/// Renders a user name for a terminal: control characters escaped.
fn printable(user: &str) -> String {
    user.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, cli.key.as_deref(), args),
        Command::Users(cmd) => users(&cli.db, cmd),
        Command::Keys(cmd) => keys(&cli.db, cli.key.as_deref(), cmd),
        Command::Factors(cmd) => factors(&cli.db, cmd),
        Command::Audit { user, limit } => audit(&cli.db, &user, limit),
        Command::Devices(cmd) => devices(&cli.db, cmd),
        Command::Bans(cmd) => bans(&cli.db, cmd),
        Command::ImportDjango { django_db, dry_run } => {
            let key = master_key(cli.key.as_deref())?;
            crate::import_django::run(&cli.db, &key, &django_db, dry_run)
        }
        Command::Sessions(cmd) => sessions(&cli.db, cmd),
    }
}

fn factors(db: &str, cmd: FactorsCommand) -> Result<(), String> {
    let pool = open(db)?;
    match cmd {
        FactorsCommand::Enterprise { user, id, state } => {
            let on = state == "on";
            pool.with(|c| db::set_enterprise(c, &user, &id, on, ADMIN)).map_err(|e| e.to_string())?;
            println!(
                "factor {} of {} is {}",
                printable(&id),
                printable(&user),
                if on { "enterprise-owned" } else { "user-owned" }
            );
        }
        FactorsCommand::Delete { user, id } => {
            pool.with(|c| db::delete_factor(c, &user, &id, ADMIN)).map_err(|e| e.to_string())?;
            println!("deleted factor {} of {}", printable(&id), printable(&user));
        }
    }
    Ok(())
}

fn audit(db: &str, user: &str, limit: i64) -> Result<(), String> {
    if !(1..=10_000).contains(&limit) {
        return Err("--limit must be 1..=10000".into());
    }
    let pool = open(db)?;
    let rows = pool.with(|c| db::audit::list(c, user, limit)).map_err(|e| e.to_string())?;
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            r.at,
            r.event,
            printable(&r.actor),
            printable(r.factor_id.as_deref().unwrap_or("-")),
            r.detail.map(|d| printable(&d.to_string())).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

fn devices(db: &str, cmd: DevicesCommand) -> Result<(), String> {
    let pool = open(db)?;
    match cmd {
        DevicesCommand::List { user } => {
            let list = pool.with(|c| db::devices::list(c, &user)).map_err(|e| e.to_string())?;
            for d in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.added_at,
                    d.last_used_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                    d.expires_at,
                    printable(&d.user_agent)
                );
            }
        }
        DevicesCommand::Revoke { user, id } => {
            pool.with(|c| db::devices::revoke(c, &user, &id, ADMIN)).map_err(|e| e.to_string())?;
            println!("revoked device {} of {}", printable(&id), printable(&user));
        }
    }
    Ok(())
}

fn bans(db: &str, cmd: BansCommand) -> Result<(), String> {
    let pool = open(db)?;
    match cmd {
        BansCommand::List => {
            let list = pool.with(|c| db::bans::list(c)).map_err(|e| e.to_string())?;
            for (kind, subject, until) in list {
                println!("{kind}\t{}\t{until}", printable(&subject));
            }
        }
        BansCommand::Lift { subject } => {
            let n = pool.with(|c| db::bans::lift(c, &subject, ADMIN)).map_err(|e| e.to_string())?;
            println!("lifted {n} ban(s) on {}", printable(&subject));
        }
    }
    Ok(())
}

fn sessions(db: &str, cmd: SessionsCommand) -> Result<(), String> {
    let pool = open(db)?;
    match cmd {
        SessionsCommand::Revoke { user } => {
            let nb = pool
                .with(|c| db::revocations::revoke_user_audited(c, &user, ADMIN, "admin"))
                .map_err(|e| e.to_string())?;
            println!("sessions of {} issued before {nb} are revoked", printable(&user));
        }
    }
    Ok(())
}

fn serve(db: &str, key: Option<&str>, args: ServeArgs) -> Result<(), String> {
    let key = master_key(key)?;
    let token = match args.token.as_deref() {
        Some(t) if !t.is_empty() => TokenCheck::new(t),
        _ => return Err("EDGE_MFA_STORE_TOKEN is required (the bearer token the filter sends)".into()),
    };
    let transports = Transports::from_env()?;
    // Checked now: a broken template stops the store at start, not at the first send.
    let email_template = args
        .email_template
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(|p| EmailTemplate::load(std::path::Path::new(p)))
        .transpose()?;
    if let Some(t) = &email_template {
        let parts = if t.has_text() { "HTML + plain text" } else { "HTML" };
        tracing::info!("email template {} ({parts})", t.source.display());
    }
    let pool = open(db)?;
    tracing::info!("database: {}", pool.target().describe());
    pool.with(|c| db::verify_master_key(c, &key)).map_err(|e| e.to_string())?;
    if let Some(kid) = pool.with(|c| db::add_session_key(c, &key, true)).map_err(|e| e.to_string())? {
        tracing::info!("created session key {kid}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let send_limits = db::otp_limits::SendLimits {
        per_user: args.otp_sends_per_user,
        per_address: args.otp_sends_per_address,
        window_s: args.otp_send_window_s,
    };
    let state = std::sync::Arc::new(api::AppState { pool, key, token, transports, email_template, send_limits });
    let served = runtime.block_on(api::serve(state.clone(), &args.listen));
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    drop(state);
    served
}

fn users(db: &str, cmd: UsersCommand) -> Result<(), String> {
    let pool = open(db)?;
    match cmd {
        UsersCommand::List => {
            let users = pool.with(|c| db::list_users(c)).map_err(|e| e.to_string())?;
            for (user, count) in users {
                println!("{}\t{count}", printable(&user));
            }
        }
        UsersCommand::Show { user } => {
            let factors = pool.with(|c| db::list_factors(c, &user, None)).map_err(|e| e.to_string())?;
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
                        "owned_by_enterprise": f.owned_by_enterprise,
                        "sign_count": f.sign_count,
                        "recovery_remaining": f.recovery_remaining,
                    })
                })
                .collect();
            let out = serde_json::json!({"user": user, "factors": factors});
            println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        }
        UsersCommand::Reset { user } => {
            let n = pool.with(|c| db::reset_user(c, &user, ADMIN)).map_err(|e| e.to_string())?;
            println!("deleted {n} factor(s) of {}", printable(&user));
        }
    }
    Ok(())
}

fn keys(db: &str, key: Option<&str>, cmd: KeysCommand) -> Result<(), String> {
    match cmd {
        KeysCommand::List => {
            let pool = open(db)?;
            let kids = pool.with(|c| db::list_kids(c)).map_err(|e| e.to_string())?;
            for (i, kid) in kids.iter().enumerate() {
                println!("{kid}\t{}", if i == 0 { "signing" } else { "verify" });
            }
        }
        KeysCommand::Rotate => {
            let key = master_key(key)?;
            let pool = open(db)?;
            pool.with(|c| db::verify_master_key(c, &key)).map_err(|e| e.to_string())?;
            let kid = pool
                .with(|c| db::add_session_key(c, &key, false))
                .map_err(|e| e.to_string())?
                .ok_or("no key created")?;
            println!("{kid}");
        }
    }
    Ok(())
}
