//! `serve --gateway`: the session, the pacer and the listeners of the gateway
//! ([`crate::gateway`]).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::pacing::{Governor, Limit, Pacer, PacingTable};
use ibkr_oauth::session::{Session, SessionConfig};
use ibkr_oauth::{Signer, TokenSource};
use ibkr_oauth_redis::{RedisPacer, SessionFallback, SharedSession, WhenRedisDown};
use tokio::sync::watch;

use super::super::emit;
use super::super::sandbox::StopSignals;
use crate::agent::Bound;
use crate::cli::{ServeArgs, SessionFallbackArg};
use crate::config::Settings;
use crate::error::Error;
use crate::gateway::tls::CpTls;
use crate::gateway::{Forwarding, Gateway, HeldSession};

/// Builds the session (and opens it: a failure is logged, the keeper goes on trying) and the
/// pacer: in Redis with `--redis` (one budget for the fleet, failing closed when Redis is
/// down), else in this process.
pub(super) async fn start(
    args: &ServeArgs,
    settings: &Settings,
    signer: Signer,
    tokens: Arc<dyn TokenSource>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<Gateway, Error> {
    let config_error = |e: ibkr_oauth::ConfigError| Error::Config(e.to_string());
    let username = args.gateway.username.clone().unwrap_or_default();
    let mut config = SessionConfig::builder(username.clone()).brokerage(!args.gateway.read_only);
    if let Some(ip) = &args.gateway.ip {
        config = config.ip(ip.clone());
    }
    let config = config.build().map_err(config_error)?;
    let max_wait = Duration::from_millis(args.gateway.max_wait_ms);
    let forwarding = Forwarding {
        max_in_flight: args.gateway.max_in_flight.max(1),
        max_wait,
    };
    // IBKR may count the calls in flight on top of what the governor lets leave in a second
    // (see `gateway::slots`): the governor's budget is what is left of --max-per-second.
    let budget = u32::try_from(forwarding.max_in_flight)
        .ok()
        .and_then(|slots| args.gateway.max_per_second.checked_sub(slots))
        .filter(|budget| *budget >= 2)
        .ok_or_else(|| {
            Error::Config(format!(
                "--max-in-flight {} leaves no budget under --max-per-second {}: IBKR may count \
                 every call in flight on top of those the governor lets leave in a second; \
                 lower --max-in-flight or raise --max-per-second",
                forwarding.max_in_flight, args.gateway.max_per_second
            ))
        })?;
    // A burst of up to 5 within the budget: at most `budget` leave in any second.
    let burst = (budget / 9).clamp(1, 5);
    let table = PacingTable::ibkr()
        .max_wait(max_wait)
        .global(Limit::per_second(budget - burst).burst(burst));
    let pacer: Arc<dyn Pacer> = match &args.redis.redis {
        Some(url) => Arc::new(
            RedisPacer::builder(url.clone(), username.clone(), table)
                // The session's fallback policy is the pacing's too: a host that may hold a
                // session of its own while Redis is down paces it alone.
                .when_redis_down(match args.gateway.session_fallback {
                    SessionFallbackArg::FailClosed => WhenRedisDown::FailClosed,
                    SessionFallbackArg::Local => WhenRedisDown::PaceAlone,
                })
                .build()
                .map_err(|e| Error::Config(e.to_string()))?,
        ),
        None => Arc::new(Governor::new(table).map_err(config_error)?),
    };
    // Each session this process holds: its own calls (keep-alive, validate, ssodh/init) take
    // their turns from the same governor as the forwarded ones.
    let make = {
        let (tokens, pacer) = (Arc::clone(&tokens), Arc::clone(&pacer));
        let base_url = settings.base_url().to_owned();
        move || {
            Session::builder(Arc::clone(&tokens), signer.clone(), config.clone())
                .base_url(base_url.clone())
                .pacer(Arc::clone(&pacer))
                .on_event(crate::gateway::record_session_event)
        }
    };
    let held: HeldSession = match &args.redis.redis {
        // One session per username for every gateway on this Redis: elected owner, fenced.
        Some(url) => {
            let shared = SharedSession::builder(url.clone(), username, crate::redis::key()?, make)
                .lease_ttl(Duration::from_millis(args.gateway.session_lease_ms))
                .fallback(match args.gateway.session_fallback {
                    SessionFallbackArg::FailClosed => SessionFallback::FailClosed,
                    SessionFallbackArg::Local => SessionFallback::Local,
                })
                .build()
                .map_err(|e| Error::Config(e.to_string()))?;
            let status = shared.start().await;
            tracing::info!(role = %status.role, state = ?status.state, "gateway: the fleet's session");
            shared.into()
        }
        None => {
            let session = make().build().map_err(config_error)?;
            match session.open().await {
                Ok(status) => tracing::info!(%status, "gateway: session open"),
                Err(error) => {
                    tracing::warn!(%error, "gateway: the session could not be opened yet; retrying on use")
                }
            }
            session.into()
        }
    };
    Gateway::new(
        held,
        tokens,
        pacer,
        settings.base_url(),
        forwarding,
        metrics,
    )
}

/// The `--cp-compatible` listener, made before the session starts: a bad certificate file or
/// a port in use stops the command before this process takes part in the fleet's election.
pub(super) struct CpListener {
    listener: tokio::net::TcpListener,
    tls: Option<CpTls>,
    /// The line that says where it listens.
    banner: String,
}

/// With `--cp-compatible`: its TLS (checked or made), its port bound and the CA written.
pub(super) async fn cp_listener(args: &ServeArgs) -> Result<Option<CpListener>, Error> {
    let Some(port) = args.gateway.cp_compatible else {
        return Ok(None);
    };
    // The certificate first: a bad file stops the command before it listens.
    let tls = cp_tls(args)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Agent(format!(
            "could not listen on {addr} ({e}); pick another --cp-compatible port"
        ))
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let trust = match &tls {
        Some(tls) => match tls.ca_pem() {
            Some(pem) => {
                let path = args
                    .gateway
                    .cp_tls_cert_out
                    .clone()
                    .unwrap_or_else(|| default_ca_path(args, addr.port()));
                crate::gateway::tls::write_ca(&path, pem)?;
                format!("; clients trust the CA in {}", path.display())
            }
            None => "; with your certificate".to_owned(),
        },
        None => String::new(),
    };
    let banner = format!(
        "ibkr-oauth serve: CP-Gateway-compatible on {scheme}://{addr}/v1/api (no secret; loopback only{trust})\n"
    );
    Ok(Some(CpListener {
        listener,
        tls,
        banner,
    }))
}

/// Serves the gateway on the agent's listener (with its secret on loopback TCP) and, with
/// `--cp-compatible`, on its loopback port without it, until a signal; then hands the fleet's
/// session on, on every way out (an error too: dropping it would only let the lease expire).
pub(super) async fn serve(
    gateway: Gateway,
    cp: Option<CpListener>,
    bound: Bound,
    stop: StopSignals,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let served = serve_until_stopped(&gateway, cp, bound, stop, out).await;
    if let HeldSession::Shared(shared) = gateway.session() {
        // Hands the session on at once (lease released, no logout).
        shared.stop().await;
    }
    served
}

async fn serve_until_stopped(
    gateway: &Gateway,
    cp: Option<CpListener>,
    bound: Bound,
    stop: StopSignals,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (stopped, _) = watch::channel(false);
    let on_stop = {
        let stopped = stopped.clone();
        async move {
            stop.wait().await;
            let _ = stopped.send(true);
        }
    };
    tokio::spawn(on_stop);
    let shutdown = |stopped: &watch::Sender<bool>| {
        let mut receiver = stopped.subscribe();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    };
    let cp = match cp {
        Some(CpListener {
            listener,
            tls,
            banner,
        }) => {
            emit(out, &banner)?;
            let done = shutdown(&stopped);
            let gateway = gateway.clone();
            Some(tokio::spawn(
                gateway.serve_cp_compatible(listener, tls, done),
            ))
        }
        None => None,
    };
    emit(
        out,
        &format!(
            "ibkr-oauth serve: gateway on {} (Ctrl-C to stop)\n",
            bound.describe()
        ),
    )?;
    let (listener, secret) = bound.into_parts();
    let served = listener
        .serve(gateway.router(secret), shutdown(&stopped))
        .await;
    if let Some(cp) = cp {
        let _ = stopped.send(true);
        let _ = cp.await;
    }
    served
}

/// The CP-compatible listener's TLS, if asked for: the user's certificate and key, or one made
/// now.
fn cp_tls(args: &ServeArgs) -> Result<Option<CpTls>, Error> {
    let gateway = &args.gateway;
    if !gateway.cp_tls {
        return Ok(None);
    }
    Ok(Some(match (&gateway.cp_tls_cert, &gateway.cp_tls_key) {
        (Some(cert), Some(key)) => CpTls::from_files(cert, key)?,
        _ => CpTls::generate()?,
    }))
}

/// Where the generated CA certificate goes without --cp-tls-cert-out: beside the agent's
/// socket (by default in the user's runtime directory when there is one).
fn default_ca_path(args: &ServeArgs, port: u16) -> PathBuf {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(crate::agent::default_socket_path);
    let dir = socket
        .parent()
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    dir.join(format!("ibkr-oauth-gateway-{port}-ca.pem"))
}
