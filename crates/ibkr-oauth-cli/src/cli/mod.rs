//! The command line: subcommands, their flags, and the environment variables behind them
//! (clap). The `IBKR_*` variables are read by the SDK's [`ibkr_oauth::Config`], not by clap, so
//! that an error in one names the variable, not a flag that was never given.

mod client;
mod local;
mod session;

use clap::{ArgAction, Parser, Subcommand};

pub use client::{
    AssertionArgs, DoctorArgs, ExecArgs, GatewayArgs, JwkArgs, RedisArgs, RequestArgs, ServeArgs,
    SessionFallbackArg, SignerArgs, TokenArgs,
};
pub use local::{CompletionsArgs, DemoArgs, KeyFileArgs, KeygenArgs, SandboxArgs};
pub use session::{OpenArgs, SessionAction, SessionArgs, TokenArgs as SessionTokenArgs};

/// The exit codes, as `--help` shows them (the table of the [crate docs](crate) and
/// [`exit`](crate::exit)).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal failure (crypto backend, writing the output)
  2  usage or configuration (flags, missing settings, key files, base URL)
  3  the server refused the request (its problem's title and detail are printed)
  4  transport (no connection, timeout, connection broken)
  5  invalid response (neither a token nor a problem: an HTML page, a redirect...)";

/// `ibkr-oauth`: OAuth 2.0 access tokens for the Interactive Brokers Web API.
#[derive(Debug, Parser)]
#[command(
    name = "ibkr-oauth",
    version,
    about = "OAuth 2.0 access tokens for the Interactive Brokers Web API (private_key_jwt)",
    long_about = "OAuth 2.0 access tokens for the Interactive Brokers Web API (private_key_jwt).\n\n\
                  No IBKR account yet? `ibkr-oauth demo` runs the whole flow against a local \
                  sandbox. Setting up? `ibkr-oauth doctor` checks it step by step. Secrets \
                  (tokens, assertions, keys) are printed only with --raw or --reveal.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Log what happens on stderr: -v info, -vv debug, -vvv trace (RUST_LOG works too);
    /// secrets are never logged.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch an access token (a summary by default; --json, or --raw for scripts).
    #[command(after_help = EXIT_CODES_HELP)]
    Token(TokenArgs),
    /// Check a setup step by step: settings, key, clock, token, scopes, the echo endpoints.
    #[command(after_help = EXIT_CODES_HELP)]
    Doctor(DoctorArgs),
    /// Sign a fresh client assertion (the JWT the token request carries) and show it.
    #[command(after_help = EXIT_CODES_HELP)]
    Assertion(AssertionArgs),
    /// Print the public key of a private key as a JWK, with its RFC 7638 thumbprint.
    #[command(after_help = EXIT_CODES_HELP)]
    Jwk(JwkArgs),
    /// Write a new key pair as PEM and print what to register with IBKR.
    #[command(after_help = EXIT_CODES_HELP)]
    Keygen(KeygenArgs),
    /// Run a local IBKR-compatible token endpoint on a loopback port until Ctrl-C.
    #[command(after_help = EXIT_CODES_HELP)]
    Sandbox(SandboxArgs),
    /// Run the whole flow against an in-process sandbox: no IBKR account needed.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(DemoArgs),
    /// Serve the token to local programs in any language (a unix socket, or loopback with a
    /// secret) until Ctrl-C: one token for the whole host.
    #[command(after_help = EXIT_CODES_HELP)]
    Serve(ServeArgs),
    /// Run a command with the token in its environment (IBKR_ACCESS_TOKEN) and in a file kept
    /// current; pass signals on, exit with its code; on refresh: nothing, a signal, or a
    /// restart.
    #[command(after_help = EXIT_CODES_HELP)]
    Exec(ExecArgs),
    /// IBKR's SSO and brokerage session: open, status, keep (hold it open), logout.
    #[command(after_help = EXIT_CODES_HELP)]
    Session(SessionArgs),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    Completions(CompletionsArgs),
}

/// Parses an algorithm name for clap (any case), with the SDK's message on failure.
pub(crate) fn parse_algorithm(name: &str) -> Result<ibkr_oauth::Algorithm, String> {
    name.parse::<ibkr_oauth::Algorithm>()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("5  invalid response"), "{help}");
    }

    #[test]
    fn debug_of_the_arguments_never_shows_a_private_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKEYMATERIAL\n-----END PRIVATE KEY-----";
        let cli =
            Cli::try_parse_from(["ibkr-oauth", "assertion", "--private-key", pem]).expect("parses");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("KEYMATERIAL"), "{shown}");
    }

    #[test]
    fn verbosity_counts_and_is_global() {
        let cli = Cli::try_parse_from(["ibkr-oauth", "token", "-vvv"]).expect("parses");
        assert_eq!(cli.verbose, 3);
        let cli = Cli::try_parse_from(["ibkr-oauth", "-v", "jwk"]).expect("parses");
        assert_eq!(cli.verbose, 1);
    }
}
