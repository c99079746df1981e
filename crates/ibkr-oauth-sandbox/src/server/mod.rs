//! The HTTP side: the accept loop, the routes, and (in submodules) the shared state, the
//! handlers of the token endpoint and of the echo endpoints, and the running sandbox's handle.
//!
//! Connections are served by hyper directly (not `axum::serve`) so that a handler can make the
//! connection close without an answer: a fault that `axum::serve` cannot produce.

mod controls;
mod echo;
mod handle;
mod portfolio;
mod session;
mod shared;
mod token;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::DATE;
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

pub use handle::RunningSandbox;
use shared::{CloseConnection, Shared, stopped};

use crate::clock::Clock;
use crate::log::RequestLog;
use crate::pacing::Pacing;
use crate::protocol::{ECHO_HTTPS_PATH, ECHO_SIGNED_JWT_PATH, TOKEN_PATH};
use crate::session::{
    AUTH_STATUS_PATH, ISERVER_ACCOUNTS_PATH, LOGOUT_PATH, PORTFOLIO_ACCOUNTS_PATH,
    SSO_SESSIONS_PATH, SSO_VALIDATE_PATH, SSODH_INIT_PATH, Sessions, TICKLE_PATH,
};
use crate::token::Minter;
use crate::{Error, Sandbox, SandboxBuilder};

/// How long shutdown waits for a connection to finish after asking it to close; then it is
/// dropped. Without it a client that sent part of a request head would hold shutdown forever.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The service error that makes hyper drop the connection without answering.
#[derive(Debug)]
struct ClosedOnPurpose;

impl fmt::Display for ClosedOnPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by an injected fault or by shutdown")
    }
}

impl std::error::Error for ClosedOnPurpose {}

// Starting lives here, beside the accept loop, so that the configuration never calls up into
// the server: `config` -> `server`, one way.
impl Sandbox {
    /// Starts serving on `127.0.0.1` at a free port. Must be called within a tokio runtime; the
    /// server runs as a task on it until [`RunningSandbox::shutdown`] or drop.
    ///
    /// # Errors
    /// [`Error::Bind`] when the socket cannot be opened, [`Error::Random`] when the operating
    /// system gives no randomness for the token secret.
    pub async fn start(self) -> Result<RunningSandbox, Error> {
        self.start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// Starts serving on `addr` (port 0 picks a free one). Anything but a loopback address
    /// exposes a token minter to the network: meant for containers, not for hosts.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_on(self, addr: SocketAddr) -> Result<RunningSandbox, Error> {
        start(self, addr).await
    }
}

impl SandboxBuilder {
    /// Builds and starts the sandbox on `127.0.0.1` at a free port.
    ///
    /// # Errors
    /// Those of [`build`](Self::build) and [`Sandbox::start`].
    pub async fn start(self) -> Result<RunningSandbox, Error> {
        self.build()?.start().await
    }

    /// Builds and starts the sandbox on `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// Those of [`build`](Self::build) and [`Sandbox::start_on`].
    pub async fn start_on(self, addr: SocketAddr) -> Result<RunningSandbox, Error> {
        self.build()?.start_on(addr).await
    }
}

async fn start(sandbox: Sandbox, addr: SocketAddr) -> Result<RunningSandbox, Error> {
    crate::crypto::ensure_provider();
    let minter = Minter::new()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let Sandbox {
        config,
        clock_offset_secs,
    } = sandbox;
    let tls = if config.tls {
        Some(crate::tls::generate()?)
    } else {
        None
    };
    let sessions = Mutex::new(Sessions::new(config.sessions.clone()));
    let pacing = config.pacing.clone().map(|p| Mutex::new(Pacing::new(p)));
    let shared = Arc::new(Shared {
        log: Mutex::new(RequestLog::new(config.request_log_capacity)),
        config,
        clock: Clock::new(clock_offset_secs),
        minter,
        faults: Mutex::new(VecDeque::new()),
        received: watch::Sender::new(0),
        tokens_issued: AtomicU64::new(0),
        seen_jtis: Mutex::new(HashMap::new()),
        revoked_jtis: Mutex::new(HashSet::new()),
        revoked_through: AtomicU64::new(0),
        next_request: AtomicU64::new(1),
        sessions,
        pacing,
        shutdown: watch::Sender::new(false),
    });
    let router = Router::new()
        .route(TOKEN_PATH, post(token::token_endpoint))
        .route(ECHO_HTTPS_PATH, get(echo::echo_https))
        .route(ECHO_SIGNED_JWT_PATH, post(echo::echo_signed_jwt))
        .route(SSO_SESSIONS_PATH, post(session::sso_sessions))
        .route(SSO_VALIDATE_PATH, get(session::validate))
        .route(SSODH_INIT_PATH, post(session::ssodh_init))
        .route(TICKLE_PATH, get(session::tickle).post(session::tickle))
        .route(AUTH_STATUS_PATH, post(session::auth_status))
        .route(LOGOUT_PATH, post(session::logout))
        .route(PORTFOLIO_ACCOUNTS_PATH, get(portfolio::portfolio_accounts))
        .route(ISERVER_ACCOUNTS_PATH, get(portfolio::iserver_accounts))
        .method_not_allowed_fallback(echo::method_not_allowed)
        .fallback(echo::not_found)
        .with_state(Arc::clone(&shared));
    let ca_pem = tls.as_ref().map(|tls| tls.ca_pem.clone());
    let task = tokio::spawn(accept_loop(listener, router, Arc::clone(&shared), tls));
    tracing::debug!(%local_addr, "sandbox started");
    Ok(RunningSandbox::new(shared, local_addr, task, ca_pem))
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    tls: Option<crate::tls::Tls>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (router, shared) = (router.clone(), Arc::clone(&shared));
                    match &tls {
                        None => connections.spawn(serve_connection(stream, router, shared)),
                        Some(tls) => connections.spawn(serve_tls(stream, tls.acceptor.clone(), router, shared)),
                    };
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "sandbox: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// The TLS handshake, then the connection; a failed handshake (a client that does not trust
/// the CA, say) only closes this connection.
async fn serve_tls(stream: TcpStream, acceptor: TlsAcceptor, router: Router, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let handshake = tokio::select! {
        handshake = acceptor.accept(stream) => handshake,
        () = stopped(&mut shutdown) => return,
    };
    match handshake {
        Ok(stream) => serve_connection(stream, router, shared).await,
        Err(error) => tracing::debug!(%error, "sandbox: TLS handshake failed"),
    }
}

async fn serve_connection<S>(stream: S, router: Router, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.subscribe();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let shared = Arc::clone(&shared);
            async move {
                let Ok(mut response) = router.oneshot(request).await;
                if response.extensions().get::<CloseConnection>().is_some() {
                    return Err(ClosedOnPurpose);
                }
                // The sandbox's clock, not hyper's: clients measure their skew from this header.
                if let Ok(date) = HeaderValue::from_str(&shared.clock.http_date()) {
                    response.headers_mut().insert(DATE, date);
                }
                Ok(response)
            }
        });
    // No header read timeout (and so no timer): hyper arms it on idle keep-alive connections
    // too, and under tokio's paused time (the SDK's tests) it would close pooled connections
    // at random points of a test. A loopback test server has no slow-loris to fear.
    let connection = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            // Past the grace the connection is dropped, and with it any handler it runs.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}
