//! `ibkr-oauth-sandbox`: runs the sandbox (token endpoint, echo endpoints, the session
//! endpoints) on a loopback port until Ctrl-C, with one line per request on stderr.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use ibkr_oauth_sandbox::{Algorithm, RegisteredClient, Sandbox};

const USAGE: &str = "\
Runs a local stand-in of IBKR's OAuth 2.0 token endpoint, echo endpoints and session
endpoints (sso-sessions, /v1/api/...) on 127.0.0.1 until Ctrl-C.

Usage: ibkr-oauth-sandbox --client-id ID --kid KID --public-key FILE [options]

Options:
  --client-id ID      the client id (the assertion's iss and sub)
  --kid KID           the key id the assertion's header names
  --public-key FILE   the client's public key, PEM SubjectPublicKeyInfo (BEGIN PUBLIC KEY)
  --alg ALG           RS256, PS256, ES256 or EdDSA (default: from the key type)
  --audience AUD      the aud assertions must carry (default: /token)
  --port P            the port to listen on (default: a free one)
  --tls CA_FILE       serve https with a certificate for localhost/127.0.0.1 issued by a
                      CA made at start; its certificate (PEM) is written to CA_FILE for
                      clients to trust
  --session-idle-timeout SECS
                      how long an SSO session lives without a request (default 360)
  -h, --help          this help

Prints the base URL on stdout, then the client settings on stderr, then one line per
request on stderr (time, request id, client id, kid, endpoint, status, outcome).
Exit codes: 0 stopped, 1 could not start, 2 usage or configuration error.";

struct Args {
    client_id: String,
    kid: String,
    public_key: String,
    alg: Option<Algorithm>,
    audience: Option<String>,
    port: u16,
    tls: Option<String>,
    idle_timeout: Option<u64>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut client_id, mut kid, mut public_key, mut alg, mut audience, mut port) =
        (None, None, None, None, None, 0u16);
    let (mut tls, mut idle_timeout) = (None, None);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--client-id" => client_id = Some(value()?),
            "--kid" => kid = Some(value()?),
            "--public-key" => public_key = Some(value()?),
            "--alg" => {
                let raw = value()?;
                alg = Some(raw.parse::<Algorithm>().map_err(|e| e.to_string())?);
            }
            "--audience" => audience = Some(value()?),
            "--port" => {
                let raw = value()?;
                port = raw
                    .parse()
                    .map_err(|_| format!("--port {raw:?} is not a port number"))?;
            }
            "--tls" => tls = Some(value()?),
            "--session-idle-timeout" => {
                let raw = value()?;
                idle_timeout = Some(
                    raw.parse::<u64>()
                        .ok()
                        .filter(|secs| *secs > 0)
                        .ok_or_else(|| {
                            format!("--session-idle-timeout {raw:?} is not a number of seconds")
                        })?,
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let missing = |flag: &str| format!("{flag} is required");
    Ok(Some(Args {
        client_id: client_id.ok_or_else(|| missing("--client-id"))?,
        kid: kid.ok_or_else(|| missing("--kid"))?,
        public_key: public_key.ok_or_else(|| missing("--public-key"))?,
        alg,
        audience,
        port,
        tls,
        idle_timeout,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ibkr-oauth-sandbox: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let pem = match std::fs::read_to_string(&args.public_key) {
        Ok(pem) => pem,
        Err(e) => {
            eprintln!(
                "ibkr-oauth-sandbox: cannot read the public key {:?}: {e}",
                args.public_key
            );
            return ExitCode::from(2);
        }
    };
    let client = RegisteredClient::new(&args.client_id);
    let client = match args.alg {
        Some(alg) => client.key_with_algorithm(&args.kid, alg, pem),
        None => client.key(&args.kid, pem),
    };
    let mut builder = Sandbox::builder().client(client).trace_requests(true);
    if let Some(audience) = &args.audience {
        builder = builder.audience(audience);
    }
    if let Some(secs) = args.idle_timeout {
        builder = builder.session_idle_timeout(std::time::Duration::from_secs(secs));
    }
    builder = builder.tls(args.tls.is_some());
    let sandbox = match builder.build() {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("ibkr-oauth-sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match sandbox
        .start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
    {
        Ok(running) => running,
        Err(e) => {
            eprintln!("ibkr-oauth-sandbox: {e}");
            return ExitCode::from(1);
        }
    };
    if let (Some(path), Some(pem)) = (&args.tls, running.ca_certificate_pem()) {
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!("ibkr-oauth-sandbox: cannot write the CA certificate to {path:?}: {e}");
            running.shutdown().await;
            return ExitCode::from(1);
        }
    }
    println!("{}", running.base_url());
    eprintln!("token endpoint: POST {}", running.token_url());
    eprintln!("SSO session: POST {}", running.sso_sessions_url());
    if let Some(path) = &args.tls {
        eprintln!("TLS: trust the CA certificate in {path}");
    }
    eprintln!(
        "client id: {}  kid: {}  audience: {}",
        args.client_id,
        args.kid,
        running.audience()
    );
    eprintln!("press Ctrl-C to stop");
    wait_for_stop().await;
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
