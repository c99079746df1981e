//! The flags of the commands that work locally: `keygen`, `sandbox`, `demo`, `completions`.

use std::path::PathBuf;

use clap::Args;
use ibkr_oauth::Algorithm;

use super::parse_algorithm;

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
    /// The algorithm the key is for: RS256 (RSA 2048, IBKR's), PS256, ES256 (P-256) or EdDSA
    /// [env: IBKR_ALG] [default: RS256].
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub alg: Option<Algorithm>,
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
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
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

/// `ibkr-oauth completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
