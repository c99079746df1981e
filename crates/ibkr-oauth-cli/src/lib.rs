//! The `ibkr-oauth` command: gets OAuth 2.0 access tokens from the Interactive Brokers Web API
//! token endpoint, signs and decodes client assertions, makes key pairs, and runs a local
//! sandbox of the endpoint, with no IBKR account needed for the last two.
//!
//! ```text
//! ibkr-oauth demo                       # the whole flow against an in-process sandbox
//! ibkr-oauth keygen --out keys/         # a key pair to register with IBKR
//! ibkr-oauth sandbox                    # a local token endpoint, until Ctrl-C
//! ibkr-oauth token                      # a token: summary, --json (the contract), or --raw
//! ibkr-oauth serve --sink PATH          # the agent on a socket, and the token in a file
//! ibkr-oauth exec -- CMD ARGS...        # CMD with the token in its environment
//! ibkr-oauth doctor                     # check a setup step by step (--json for machines)
//! ibkr-oauth jwk                        # the public JWK and RFC 7638 thumbprint of a key
//! ibkr-oauth assertion --decode         # what a signed assertion carries
//! ibkr-oauth completions bash           # a shell completion script
//! ```
//!
//! `token`, `doctor`, `assertion` and `jwk` read their settings from flags or the environment
//! (through the SDK's `Config`): `IBKR_CLIENT_ID`, `IBKR_KEY_ID`, `IBKR_PRIVATE_KEY` (a path or
//! the PEM text), `IBKR_PRIVATE_KEY_PASSPHRASE`, `IBKR_SCOPE`, `IBKR_BASE_URL`,
//! `IBKR_AUDIENCE`, `IBKR_ALG` (see [`config`]). `-v`/`-vv`/`-vvv` or `RUST_LOG` log to stderr.
//!
//! # Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an internal failure (the crypto backend, writing the output) |
//! | 2 | usage or configuration: a flag, a missing setting, a key file, a base URL |
//! | 3 | the server refused the request: its problem's title and detail are printed |
//! | 4 | transport: no connection, a timeout, the connection broke |
//! | 5 | an invalid response: not a token, not a problem (an HTML page, a redirect...) |
//!
//! [`exit`] holds the codes and maps every error to its code in one place.
//!
//! # Output
//! Results go to stdout; an error goes to stderr as one line, `ibkr-oauth: <what happened and
//! what to do>`, never with a backtrace. Secrets (the access token, the assertion, the private
//! key) never appear in the output unless `--raw` or `--reveal` asks for them.
//!
//! This library is the command's whole logic, so that it can be tested; `main.rs` only reads
//! the local time offset and calls [`run`].

#![deny(missing_docs)]

pub mod agent;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod error;
pub mod exit;
pub mod gateway;
pub mod output;
pub mod passphrase;
pub mod redis;
pub mod sink;
pub mod verbose;
pub mod watch;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser as _;

pub use cli::Cli;
pub use error::Error;
pub use output::LocalTime;

/// Runs the command line `args` (the program name first), writing results to `stdout` and
/// errors to `stderr`, and returns the exit code (see [`exit`]).
///
/// `local` converts instants to local time; read it with [`LocalTime::detect`] before any
/// thread starts.
pub fn run<I, T>(args: I, local: LocalTime, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return exit::for_clap_error(&e, stdout, stderr),
    };
    // A current-thread runtime: every event of the run is on this thread, under this guard.
    let _logging = verbose::init(cli.verbose);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli, local, stdout)));
    match result {
        Ok(code) => code,
        Err(error) => exit::report(&error, stderr),
    }
}
