//! One module a subcommand; [`run`] dispatches.

pub mod assertion;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod jwk;
pub mod keygen;
pub mod sandbox;
pub mod serve;
pub mod session;
pub mod token;

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::PrivateKey;
use ibkr_oauth::key::KeyType;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::output::LocalTime;

/// Runs the parsed command line, writing its results to `out`; returns the exit code (`exec`
/// exits with its child's, the others with [`SUCCESS`](crate::exit::SUCCESS)).
///
/// # Errors
/// The command's [`Error`]; [`exit::report`](crate::exit::report) prints it and gives its exit
/// code.
pub async fn run(cli: Cli, local: LocalTime, out: &mut dyn Write) -> Result<u8, Error> {
    match cli.command {
        Command::Exec(args) => exec::run(&args).await,
        command => run_to_end(command, local, out)
            .await
            .map(|()| crate::exit::SUCCESS),
    }
}

async fn run_to_end(command: Command, local: LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        Command::Token(args) => token::run(&args, &local, out).await,
        Command::Assertion(args) => assertion::run(&args, &local, out),
        Command::Doctor(args) => doctor::run(&args, &local, out).await,
        Command::Jwk(args) => jwk::run(&args, out),
        Command::Completions(args) => completions::run(&args, out),
        Command::Keygen(args) => keygen::run(&args, out),
        Command::Sandbox(args) => sandbox::run(&args, out).await,
        Command::Serve(args) => serve::run(&args, out).await,
        Command::Demo(args) => demo::run(&args, &local, out).await,
        Command::Exec(_) => Err(Error::Internal("exec runs on its own path".into())),
        Command::Session(args) => session::run(&args, &local, out).await,
    }
}

/// Writes `text` to `out` and flushes, so that a reader of a pipe sees it at once.
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// The header and claims of a compact JWS, decoded (the signature is not looked at).
pub(crate) fn decode_jws(compact: &str) -> Result<(Value, Value), Error> {
    let mut parts = compact.split('.');
    let mut segment = |name: &str| -> Result<Value, Error> {
        parts
            .next()
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                Error::Internal(format!("the signed assertion's {name} does not decode"))
            })
    };
    Ok((segment("header")?, segment("claims")?))
}

/// `RSA 2048-bit`, `EC P-256`, `Ed25519`.
pub(crate) fn describe_key(key: &PrivateKey) -> String {
    match key.key_type() {
        KeyType::Rsa => format!("RSA {}-bit", key.bits()),
        other => other.to_string(),
    }
}
