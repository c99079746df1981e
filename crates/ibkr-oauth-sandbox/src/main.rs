//! `ibkr-oauth-sandbox`: runs the sandbox (token endpoint and echo endpoints) on a loopback
//! port until Ctrl-C, with one line per request on stderr.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use ibkr_oauth_sandbox::{Algorithm, RegisteredClient, Sandbox};

const USAGE: &str = "\
Runs a local stand-in of IBKR's OAuth 2.0 token endpoint and echo endpoints on 127.0.0.1
until Ctrl-C.

Usage: ibkr-oauth-sandbox --client-id ID --kid KID --public-key FILE [options]

Options:
  --client-id ID      the client id (the assertion's iss and sub)
  --kid KID           the key id the assertion's header names
  --public-key FILE   the client's public key, PEM SubjectPublicKeyInfo (BEGIN PUBLIC KEY)
  --alg ALG           RS256, PS256, ES256 or EdDSA (default: from the key type)
  --audience AUD      the aud assertions must carry (default: /token)
  --port P            the port to listen on (default: a free one)
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
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut client_id, mut kid, mut public_key, mut alg, mut audience, mut port) =
        (None, None, None, None, None, 0u16);
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
    println!("{}", running.base_url());
    eprintln!("token endpoint: POST {}", running.token_url());
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
