//! The flags of `ibkr-oauth session open|status|keep|logout`.

use clap::{Args, Subcommand};

use super::{RequestArgs, SignerArgs};

/// `ibkr-oauth session`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// What to do with the session.
    #[command(subcommand)]
    pub action: SessionAction,
}

/// The session's subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionAction {
    /// Open an SSO session (and the brokerage session with --brokerage), check it, and leave
    /// it open; --raw prints the SSO token alone, for IBKR_SSO_TOKEN.
    Open(OpenArgs),
    /// Show the session of IBKR_SSO_TOKEN: user, IP, time left, brokerage status.
    Status(TokenArgs),
    /// Open a session and hold it open in the foreground, one line per state change, until
    /// Ctrl-C (then log out).
    Keep(OpenArgs),
    /// Log out the session of IBKR_SSO_TOKEN.
    Logout(TokenArgs),
}

/// Who opens the session and how.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// The server and the scopes (default scope: sso-sessions.write).
    #[command(flatten)]
    pub request: RequestArgs,
    /// The IBKR username the session is for [env: IBKR_USERNAME].
    #[arg(long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// The public IP IBKR sees your requests come from [env: IBKR_SESSION_IP].
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Open the brokerage session too (`/iserver`: trading, market data).
    #[arg(long)]
    pub brokerage: bool,
    /// Seconds between two keep-alive tickles (IBKR asks for about 60).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=240))]
    pub tickle_interval: u64,
    /// `open`: print the SSO token alone (a secret), for `IBKR_SSO_TOKEN=$(... --raw)`.
    #[arg(long)]
    pub raw: bool,
}

/// A session opened before: its SSO token comes from IBKR_SSO_TOKEN (never a flag).
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The API server [env: IBKR_BASE_URL] [default: https://api.ibkr.com].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Seconds allowed for each request.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}
