//! The store's error type: what went wrong, in terms the API maps to statuses.

#[derive(Debug)]
pub enum StoreError {
    /// No such row; the text names what was looked for ("factor", "challenge").
    NotFound(&'static str),
    Replay,
    UserHasFactors,
    TooManyFactors,
    /// A WebAuthn credential id is already registered (to any user).
    CredentialExists,
    /// A WebAuthn signature counter did not increase.
    CounterRegression,
    /// An id chosen by the caller (challenge, device) is taken.
    Exists(&'static str),
    /// The challenge or code has expired (or was voided).
    Expired,
    PurposeMismatch,
    /// A user-initiated change that only an administrator may make.
    EnterpriseOwned,
    /// Recovery code: no stored code matches (404).
    NoSuchCode,
    /// One-time code: wrong code, one try used up (401).
    WrongCode,
    TooManyDevices,
    /// Too many email/SMS codes sent; try again at this time (unix seconds).
    RateLimited(i64),
    /// A stored secret could not be decrypted (wrong master key or tampering).
    Decrypt(String),
    /// Deadlock or serialization failure: the whole operation is retried.
    Conflict(String),
    /// A unique constraint refused a row.
    Duplicate(String),
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(what) => write!(f, "no such {what}"),
            StoreError::Replay => write!(f, "time step already used"),
            StoreError::UserHasFactors => write!(f, "user already has an enabled factor"),
            StoreError::TooManyFactors => write!(f, "user has too many factors"),
            StoreError::CredentialExists => write!(f, "credential already registered"),
            StoreError::CounterRegression => write!(f, "signature counter did not increase"),
            StoreError::Exists(what) => write!(f, "{what} already exists"),
            StoreError::Expired => write!(f, "expired"),
            StoreError::PurposeMismatch => write!(f, "purpose mismatch"),
            StoreError::EnterpriseOwned => write!(f, "factor is owned by the enterprise"),
            StoreError::NoSuchCode | StoreError::WrongCode => write!(f, "invalid code"),
            StoreError::TooManyDevices => write!(f, "too many trusted devices"),
            StoreError::RateLimited(until) => write!(f, "rate limited until {until}"),
            StoreError::Decrypt(what) => write!(f, "cannot decrypt {what}"),
            StoreError::Conflict(msg) => write!(f, "transaction conflict: {msg}"),
            StoreError::Duplicate(msg) => write!(f, "duplicate: {msg}"),
            StoreError::Other(msg) => write!(f, "{msg}"),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Duplicate(e.to_string())
            }
            _ => StoreError::Other(format!("database error: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
