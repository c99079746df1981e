//! The one error type of the command; [`exit`](crate::exit) maps each to its exit code.

use std::path::PathBuf;

/// Everything that can make a command fail. Each message says what happened and what to do,
/// and none holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or unusable (the message names the flag and the variable).
    #[error("{0}")]
    Config(String),
    /// The SDK failed: configuration, key, signing, or the token request itself.
    #[error(transparent)]
    Sdk(#[from] ibkr_oauth::Error),
    /// The token request failed: the SDK's error with its causes, then what to do and the
    /// request id to quote to IBKR, as doctor's report gives them.
    #[error("{message}")]
    Request {
        /// The whole text: the error, its causes, the hint, the request id.
        message: String,
        /// The SDK's error (its kind sets the exit code).
        error: ibkr_oauth::Error,
    },
    /// The sandbox could not be configured or started.
    #[error("sandbox")]
    Sandbox(#[from] ibkr_oauth_sandbox::Error),
    /// A file to write exists and `--force` was not given.
    #[error("{} already exists; pass --force to overwrite it, or choose another path", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory could not be written or read.
    #[error("could not {action} {}; check the path and its permissions", path.display())]
    File {
        /// What was being done (`create`, `write`, `read`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The results could not be written to stdout (a closed pipe...).
    #[error("could not write the output")]
    Output(#[source] std::io::Error),
    /// The async runtime could not be started.
    #[error("could not start the async runtime; retry")]
    Runtime(#[source] std::io::Error),
    /// Waiting for Ctrl-C failed.
    #[error("could not wait for Ctrl-C")]
    Signal(#[source] std::io::Error),
    /// The local token agent could not listen or serve (the message says why and what to do).
    #[error("{0}")]
    Agent(String),
    /// A sink file could not be set up or written (the message says why and what to do).
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// Waiting for `exec`'s child failed.
    #[error("could not wait for the command `exec` runs")]
    Exec(#[source] std::io::Error),
    /// `doctor` found a failing check (its report, already printed, says what to do).
    #[error("doctor: the {first} check failed; see the report above")]
    ChecksFailed {
        /// The name of the first failing check.
        first: &'static str,
        /// The exit code of its class.
        code: u8,
    },
    /// A session call failed without an answer, or with one that cannot be used (the message
    /// says what to do).
    #[error("{0}")]
    Session(String),
    /// IBKR refused a call with the session (ended, or another refusal; the message says what
    /// to do).
    #[error("{0}")]
    SessionEnded(String),
    /// Something the SDK promises did not hold (a bug to report).
    #[error("{0}; this is a bug, please report it")]
    Internal(String),
}

impl From<ibkr_oauth::KeyError> for Error {
    fn from(error: ibkr_oauth::KeyError) -> Self {
        Error::Sdk(error.into())
    }
}

impl From<ibkr_oauth::SignError> for Error {
    fn from(error: ibkr_oauth::SignError) -> Self {
        Error::Sdk(error.into())
    }
}

impl From<ibkr_oauth::ConfigError> for Error {
    fn from(error: ibkr_oauth::ConfigError) -> Self {
        Error::Sdk(error.into())
    }
}

impl Error {
    /// `error` from a token request, with what to do (when its own message does not say) and
    /// the request id to quote to IBKR.
    pub fn request(error: ibkr_oauth::Error, kid: &str) -> Self {
        let mut message = crate::exit::chain(&Error::Sdk(error.clone()));
        if let Some(hint) = crate::commands::doctor::hints::token(&error, kid) {
            message.push_str("; ");
            message.push_str(&hint);
        }
        if let Some(id) = error.response().and_then(|r| r.request_id.clone()) {
            if !message.contains(&id) {
                message.push_str(&format!(" (quote to IBKR: {id})"));
            }
        }
        Error::Request { message, error }
    }
}
