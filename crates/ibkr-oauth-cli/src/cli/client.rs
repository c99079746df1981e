//! The flags of the commands that act as the client: `token`, `doctor`, `assertion`, `jwk`.
//! Each flag names its variable in its help; the variable is read by [`ibkr_oauth::Config`].

use std::ffi::OsString;

use clap::Args;
use ibkr_oauth::{Algorithm, SecretString};

use super::parse_algorithm;

/// Who the client is and how it signs: shared by `token`, `doctor` and `assertion`.
#[derive(Debug, Clone, Args)]
pub struct SignerArgs {
    /// The client id IBKR gave you (the assertion's iss and sub) [env: IBKR_CLIENT_ID].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// The key id the public key was registered under (the assertion's kid)
    /// [env: IBKR_KEY_ID] [default: main].
    #[arg(long = "key-id", visible_alias = "kid", value_name = "KID")]
    pub key_id: Option<String>,
    /// The private key: the path of a PEM file, or the PEM text itself [env: IBKR_PRIVATE_KEY].
    /// An encrypted key's passphrase comes from IBKR_PRIVATE_KEY_PASSPHRASE, or is asked for
    /// when stdin is a terminal.
    #[arg(
        long,
        value_name = "PATH_OR_PEM",
        allow_hyphen_values = true,
        value_parser = secret
    )]
    pub private_key: Option<SecretString>,
    /// The assertion's aud claim [env: IBKR_AUDIENCE] [default: /token].
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
    /// The signature algorithm: RS256, PS256, ES256 or EdDSA [env: IBKR_ALG] [default: from
    /// the key type].
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub alg: Option<Algorithm>,
}

/// Where the client asks and for what: shared by `token` and `doctor`.
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// The scopes to ask for, space-delimited (e.g. "sso-sessions.write") [env: IBKR_SCOPE].
    #[arg(long, value_name = "SCOPES")]
    pub scope: Option<String>,
    /// The token server (IBKR's production server by default).
    #[arg(
        long,
        value_name = "URL",
        help = "The token server; plain http only to loopback hosts [env: IBKR_BASE_URL] \
                [default: https://api.ibkr.com]"
    )]
    pub base_url: Option<String>,
    /// Seconds allowed for each request.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// `ibkr-oauth token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// The server and the scopes.
    #[command(flatten)]
    pub request: RequestArgs,
    /// Print the token as the versioned JSON object of the credential contract (version,
    /// access_token, token_type, expires_at in RFC 3339, scope); access_token redacted unless
    /// --reveal, so a program runs `ibkr-oauth token --json --reveal`.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Print the bare access token alone, for `$(ibkr-oauth token --raw)`.
    #[arg(long)]
    pub raw: bool,
    /// Show the access token in the summary or the JSON.
    #[arg(long, conflicts_with = "raw")]
    pub reveal: bool,
    /// Share the token through this Redis (redis:// or rediss://): one token request for the
    /// fleet; the encryption key comes from IBKR_REDIS_KEY.
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// The fleet-shared cache.
#[derive(Debug, Args)]
pub struct RedisArgs {
    /// A Redis to share the token through (redis:// or rediss://, user and password in the
    /// URL); the 32-byte encryption key (base64) comes from IBKR_REDIS_KEY.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// `ibkr-oauth doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// The server and the scopes.
    #[command(flatten)]
    pub request: RequestArgs,
    /// Check the session too, for this IBKR username [env: IBKR_USERNAME].
    #[arg(long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// The public IP IBKR sees your requests come from, for the session checks
    /// [env: IBKR_SESSION_IP].
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Print the checks as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `ibkr-oauth assertion`.
#[derive(Debug, Args)]
pub struct AssertionArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
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

/// `ibkr-oauth jwk`.
#[derive(Debug, Args)]
pub struct JwkArgs {
    /// The private key: the path of a PEM file, or the PEM text itself [env: IBKR_PRIVATE_KEY].
    #[arg(
        long,
        value_name = "PATH_OR_PEM",
        allow_hyphen_values = true,
        value_parser = secret
    )]
    pub private_key: Option<SecretString>,
    /// The key id to put in the JWK [env: IBKR_KEY_ID] [default: main].
    #[arg(long = "key-id", visible_alias = "kid", value_name = "KID")]
    pub key_id: Option<String>,
    /// The JWK's alg [env: IBKR_ALG] [default: from the key type].
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub alg: Option<Algorithm>,
    /// Print {"jwk": ..., "thumbprint": ...} as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Holds a flag's value as a secret from the moment it is parsed, so that `Debug` of the
/// arguments never prints a key given as PEM text.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

/// `ibkr-oauth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// The server and the scopes.
    #[command(flatten)]
    pub request: RequestArgs,
    /// The unix socket to listen on [default: $IBKR_AGENT_SOCKET, else
    /// $XDG_RUNTIME_DIR/ibkr-oauth.sock, else /tmp/ibkr-oauth-UID.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    pub socket: Option<std::path::PathBuf>,
    /// Print the socket path (as --socket, IBKR_AGENT_SOCKET and the default decide) and exit:
    /// `curl --unix-socket "$(ibkr-oauth serve --print-socket)" http://agent/token`.
    #[arg(long, conflicts_with = "listen")]
    pub print_socket: bool,
    /// Also write the bare token to this file, atomically, on every refresh; removed on a clean
    /// stop. MODE in octal, 0600 by default (0640 shares it with the file's group); an existing
    /// symlink or another user's file is refused. Repeatable.
    #[arg(long, value_name = "PATH[:MODE]")]
    pub sink: Vec<String>,
    /// As --sink, with the token as the versioned JSON object of `token --json` (version,
    /// access_token, token_type, expires_at, scope). Repeatable.
    #[arg(long, value_name = "PATH[:MODE]")]
    pub sink_json: Vec<String>,
    /// A group (name or gid) whose members may use the socket too (mode 0660).
    #[arg(long, value_name = "GROUP", requires = "socket")]
    pub group: Option<String>,
    /// Listen on this loopback address instead (e.g. 127.0.0.1:8765); every request must send
    /// the secret from IBKR_AGENT_SECRET in the x-ibkr-agent-secret header.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The fleet-shared cache.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Serve Prometheus metrics on GET /metrics (token requests, refreshes, fallbacks...).
    #[arg(long)]
    pub metrics: bool,
    /// Gateway mode: hold the IBKR session of --username and forward /v1/api and /gw/api calls
    /// (what IBKR's Client Portal Gateway serves), paced.
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// `serve --gateway`: the session it holds and where CP-Gateway clients reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Forward IBKR Web API calls with the held session (see --username).
    #[arg(long, requires = "username")]
    pub gateway: bool,
    /// The IBKR username whose session the gateway holds (IBKR_USERNAME).
    #[arg(long, env = "IBKR_USERNAME", value_name = "NAME")]
    pub username: Option<String>,
    /// The public IP the session is opened from (default: asked of IBKR's side).
    #[arg(long, value_name = "IP", requires = "gateway")]
    pub ip: Option<String>,
    /// Open the SSO session only, not the brokerage session (no /iserver endpoints).
    #[arg(long, requires = "gateway")]
    pub read_only: bool,
    /// Also listen on this loopback port without the secret, for programs written for IBKR's
    /// gateway (e.g. 5000): they change nothing but the URL.
    #[arg(long, value_name = "PORT", requires = "gateway")]
    pub cp_compatible: Option<u16>,
    /// Serve https on the --cp-compatible port, as IBKR's gateway does, with a certificate
    /// for localhost/127.0.0.1/::1 issued at start by a CA made for it (its key is dropped at
    /// once); the CA's certificate is written to --cp-tls-cert-out for clients to trust
    /// (Python: `requests.get(url, verify=PATH)`).
    #[arg(long, requires = "cp_compatible")]
    pub cp_tls: bool,
    /// Where to write the generated CA certificate (PEM, public) [default: next to the
    /// agent's default socket, printed at start].
    #[arg(
        long,
        value_name = "PATH",
        requires = "cp_tls",
        conflicts_with = "cp_tls_cert"
    )]
    pub cp_tls_cert_out: Option<std::path::PathBuf>,
    /// Serve https with this certificate chain (PEM) instead of a generated one.
    #[arg(long, value_name = "PATH", requires_all = ["cp_tls", "cp_tls_key"])]
    pub cp_tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM, PKCS#8, SEC1 or PKCS#1) of --cp-tls-cert.
    #[arg(long, value_name = "PATH", requires = "cp_tls_cert")]
    pub cp_tls_key: Option<std::path::PathBuf>,
    /// At most this many calls of the username reach IBKR in any one second, whatever the
    /// delays on the way: the governor lets this many minus --max-in-flight leave per second
    /// [default: 45, under IBKR's 50: the rest is left for the session's own calls]. Lower it
    /// when other programs use the same username.
    #[arg(long, value_name = "N", default_value_t = 45, requires = "gateway")]
    pub max_per_second: u32,
    /// At most this many calls on their way to IBKR at once; must stay below
    /// --max-per-second.
    #[arg(long, value_name = "N", default_value_t = crate::gateway::DEFAULT_MAX_IN_FLIGHT, requires = "gateway")]
    pub max_in_flight: usize,
    /// The longest a call waits for its turn under IBKR's pacing before it is refused (429).
    #[arg(long, value_name = "MS", default_value_t = 2000, requires = "gateway")]
    pub max_wait_ms: u64,
    /// With --redis, when Redis does not answer for a lease: `fail-closed` (default: no
    /// session, calls get 503, since two sessions of one username compete) or `local` (each
    /// host keeps or opens a session of its own until Redis answers again).
    #[arg(long, value_enum, default_value_t = SessionFallbackArg::FailClosed, requires = "gateway")]
    pub session_fallback: SessionFallbackArg,
    /// With --redis, the session owner's lease in milliseconds: another gateway takes the
    /// session over within a third more after the owner dies. The same on every gateway;
    /// over 1500 (three Redis command timeouts).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 10_000,
        requires = "gateway"
    )]
    pub session_lease_ms: u64,
}

/// `--session-fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionFallbackArg {
    /// No session while Redis is down (calls get 503 with the reason).
    FailClosed,
    /// Each host its own session while Redis is down (they may compete).
    Local,
}

/// `ibkr-oauth exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The client and its key.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// The server and the scopes.
    #[command(flatten)]
    pub request: RequestArgs,
    /// The fleet-shared cache.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The variable that holds the token in the command's environment.
    #[arg(long, value_name = "NAME", default_value = crate::commands::exec::TOKEN_VAR)]
    pub env: String,
    /// What to do with the command when a new token comes (before the old one expires): none
    /// (the token files are rewritten; for jobs shorter than a token's life), signal:HUP (or
    /// USR1, USR2...: the files are rewritten, then the signal is sent; the command rereads
    /// $IBKR_ACCESS_TOKEN_FILE), or restart (SIGTERM, then a new start with the new token).
    #[arg(long, value_name = "WHAT", default_value = "none")]
    pub on_refresh: crate::commands::exec::OnRefresh,
    /// Also write the bare token to this file on every refresh (as `serve --sink`).
    #[arg(long, value_name = "PATH[:MODE]")]
    pub sink: Vec<String>,
    /// Also write the token's JSON object to this file on every refresh (as `serve
    /// --sink-json`).
    #[arg(long, value_name = "PATH[:MODE]")]
    pub sink_json: Vec<String>,
    /// IBKR's SSO session for the command.
    #[command(flatten)]
    pub session: ExecSessionArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `exec --session`: an SSO session held open for the command's life.
#[derive(Debug, Args)]
pub struct ExecSessionArgs {
    /// Also open IBKR's SSO session for the command and keep it alive while it runs (logged
    /// out when it ends): the command gets IBKR_SSO_TOKEN (the bearer of /v1/api calls),
    /// IBKR_SSO_TOKEN_FILE and IBKR_GATEWAY_URL (where /v1/api calls go). The scope defaults
    /// to sso-sessions.write.
    #[arg(long)]
    pub session: bool,
    /// The IBKR username the session is for [env: IBKR_USERNAME].
    #[arg(long, value_name = "USERNAME", requires = "session")]
    pub username: Option<String>,
    /// The public IP IBKR sees your requests come from [env: IBKR_SESSION_IP].
    #[arg(long, value_name = "IP", requires = "session")]
    pub ip: Option<String>,
    /// Open the brokerage session too (`/iserver`: trading, market data).
    #[arg(long, requires = "session")]
    pub brokerage: bool,
    /// Seconds between two keep-alive tickles (IBKR asks for about 60).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "session",
          value_parser = clap::value_parser!(u64).range(1..=240))]
    pub tickle_interval: u64,
}
