//! The command line: subcommands, flags and the environment variables behind them (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ibkr_oauth::{Algorithm, SecretString};

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
                  sandbox. Secrets (tokens, assertions, keys) are printed only with --raw or \
                  --reveal.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
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
    /// Sign a fresh client assertion (the JWT the token request carries) and show it.
    #[command(after_help = EXIT_CODES_HELP)]
    Assertion(AssertionArgs),
    /// Write a new key pair as PEM and print what to register with IBKR.
    #[command(after_help = EXIT_CODES_HELP)]
    Keygen(KeygenArgs),
    /// Run a local IBKR-compatible token endpoint on a loopback port until Ctrl-C.
    #[command(after_help = EXIT_CODES_HELP)]
    Sandbox(SandboxArgs),
    /// Run the whole flow against an in-process sandbox: no IBKR account needed.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(DemoArgs),
}

/// Who the client is and where it asks: shared by `token` and `assertion`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The client id IBKR gave you (the assertion's iss and sub).
    #[arg(long, env = "IBKR_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// The key id the public key was registered under (the assertion's kid).
    #[arg(
        long = "key-id",
        visible_alias = "kid",
        env = "IBKR_KEY_ID",
        value_name = "KID",
        default_value = "main"
    )]
    pub key_id: String,
    /// The private key: the path of a PEM file, or the PEM text itself.
    #[arg(
        long,
        env = "IBKR_PRIVATE_KEY",
        value_name = "PATH_OR_PEM",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_parser = secret
    )]
    pub private_key: Option<SecretString>,
    /// The scopes to ask for, space-delimited (e.g. "sso-sessions.write").
    #[arg(long, env = "IBKR_SCOPE", value_name = "SCOPES")]
    pub scope: Option<String>,
    /// The token server (plain http only to loopback hosts).
    #[arg(long, env = "IBKR_BASE_URL", value_name = "URL", default_value = ibkr_oauth::IBKR_PRODUCTION)]
    pub base_url: String,
    /// The assertion's aud claim.
    #[arg(long, env = "IBKR_AUDIENCE", value_name = "AUD",
          default_value = ibkr_oauth::Signer::DEFAULT_AUDIENCE)]
    pub audience: String,
    /// The signature algorithm: RS256, PS256, ES256 or EdDSA [default: from the key type].
    #[arg(long, env = "IBKR_ALG", value_name = "ALG", value_parser = parse_algorithm)]
    pub alg: Option<Algorithm>,
    /// Seconds allowed for the whole token request.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// `ibkr-oauth token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The client settings.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the token response as JSON (access_token redacted unless --reveal).
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Print the bare access token alone, for `$(ibkr-oauth token --raw)`.
    #[arg(long)]
    pub raw: bool,
    /// Show the access token in the summary or the JSON.
    #[arg(long, conflicts_with = "raw")]
    pub reveal: bool,
}

/// `ibkr-oauth assertion`.
#[derive(Debug, Args)]
pub struct AssertionArgs {
    /// The client settings (the base URL, scope and timeout are not used).
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the header and claims as JSON instead (the signature is left out).
    #[arg(long, conflicts_with = "raw")]
    pub decode: bool,
    /// Print the bare compact assertion alone (a credential for its short lifetime).
    #[arg(long)]
    pub raw: bool,
    /// Show the compact assertion in the summary or the JSON.
    #[arg(long, conflicts_with = "raw")]
    pub reveal: bool,
}

/// Where `keygen` and `sandbox` write a key pair.
#[derive(Debug, Clone, Args)]
pub struct KeyFileArgs {
    /// The directory for private.pem and public.pem (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The private key's file [default: DIR/private.pem]; created with mode 0600.
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// The public key's file [default: DIR/public.pem].
    #[arg(long, value_name = "FILE")]
    pub public_key_file: Option<PathBuf>,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// `ibkr-oauth keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The algorithm the key is for: RS256 (RSA 2048, IBKR's), PS256, ES256 (P-256) or EdDSA.
    #[arg(long, env = "IBKR_ALG", value_name = "ALG", value_parser = parse_algorithm,
          default_value = "RS256")]
    pub alg: Algorithm,
    /// The key id to register the public key under.
    #[arg(
        long = "key-id",
        visible_alias = "kid",
        value_name = "KID",
        default_value = "main"
    )]
    pub key_id: String,
    /// Where to write the files [default: the current directory].
    #[command(flatten)]
    pub files: KeyFileArgs,
}

/// `ibkr-oauth sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The client's public key (PEM, BEGIN PUBLIC KEY); without it a key pair is generated
    /// and written out (to --out, or a new directory in the system's temporary directory).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// The client id to register.
    #[arg(long, value_name = "ID", default_value = "sandbox-client")]
    pub client_id: String,
    /// The key id to register the public key under.
    #[arg(
        long = "key-id",
        visible_alias = "kid",
        value_name = "KID",
        default_value = "main"
    )]
    pub key_id: String,
    /// The algorithm the key is registered for [default: from the key type; RS256 when
    /// generating].
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub alg: Option<Algorithm>,
    /// The aud assertions must carry.
    #[arg(long, value_name = "AUD", default_value = ibkr_oauth::Signer::DEFAULT_AUDIENCE)]
    pub audience: String,
    /// The loopback port to listen on [default: a free one].
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
    /// The lifetime of the tokens it issues, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_399,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub expires_in: u64,
    /// Where to write a generated key pair (ignored with --public-key).
    #[command(flatten)]
    pub files: KeyFileArgs,
}

/// `ibkr-oauth demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The algorithm of the demo's key.
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm, default_value = "RS256")]
    pub alg: Algorithm,
}

/// Parses an algorithm name for clap (any case), with the SDK's message on failure.
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    name.parse::<Algorithm>().map_err(|e| e.to_string())
}

/// Holds a flag's value as a secret from the moment it is parsed, so that `Debug` of the
/// arguments never prints a key given as PEM text.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
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
}
