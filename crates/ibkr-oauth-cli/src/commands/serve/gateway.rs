//! `serve --gateway`: the session, the pacer and the listeners of the gateway
//! ([`crate::gateway`]).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::pacing::{Governor, Limit, Pacer, PacingTable};
use ibkr_oauth::session::{Session, SessionConfig};
use ibkr_oauth::{Signer, TokenSource};
use ibkr_oauth_redis::{RedisPacer, SessionFallback, SharedSession, WhenRedisDown};
use tokio::sync::watch;

use super::super::emit;
use super::super::sandbox::StopSignals;
use crate::agent::{Bound, Limits};
use crate::cli::{ServeArgs, SessionFallbackArg};
use crate::config::Settings;
use crate::error::Error;
use crate::gateway::{Gateway, HeldSession};

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
    let base_url = settings.base_url().to_owned();
    let make = {
        let tokens = Arc::clone(&tokens);
        move || {
            Session::builder(Arc::clone(&tokens), signer.clone(), config.clone())
                .base_url(base_url.clone())
        }
    };
    let mut table = PacingTable::ibkr().max_wait(Duration::from_millis(args.gateway.max_wait_ms));
    if let Some(n) = args.gateway.max_per_second {
        // A burst of up to 5 within the budget: at most n in any second.
        let burst = (n / 9).clamp(1, 5);
        table = table.global(Limit::per_second(n.saturating_sub(burst).max(1)).burst(burst));
    }
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
    Gateway::new(held, tokens, pacer, settings.base_url(), metrics)
}

/// Serves the gateway on the agent's listener (with its secret on loopback TCP) and, with
/// `--cp-compatible`, on a loopback port without it, until a signal.
pub(super) async fn serve(
    gateway: Gateway,
    args: &ServeArgs,
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
    let cp = match args.gateway.cp_compatible {
        Some(port) => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::Agent(format!(
                    "could not listen on {addr} ({e}); pick another --cp-compatible port"
                ))
            })?;
            let addr = listener.local_addr().unwrap_or(addr);
            emit(
                out,
                &format!(
                    "ibkr-oauth serve: CP-Gateway-compatible on http://{addr}/v1/api (no secret; loopback only)\n"
                ),
            )?;
            let router = gateway.router(None);
            let done = shutdown(&stopped);
            // The agent's connection limits (header-read timeout, connection cap) here too.
            Some(tokio::spawn(async move {
                let accept = || async { listener.accept().await.map(|(io, _)| io) };
                crate::agent::limits::serve(accept, router, Limits::for_this_process(), done).await;
            }))
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
    if let HeldSession::Shared(shared) = gateway.session() {
        // Hands the session on at once (lease released, no logout).
        shared.stop().await;
    }
    served
}
