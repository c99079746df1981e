//! `ibkr-oauth serve --gateway`: a local stand-in of IBKR's Client Portal Gateway. Programs
//! written for it (`https://localhost:5000/v1/api/...`, e.g. Python's `ibind`) send their
//! calls here unchanged; the gateway forwards them to IBKR with the held session's SSO bearer,
//! paced, and answers the session's own endpoints itself.
//!
//! | route | answer |
//! |---|---|
//! | `GET`/`POST /v1/api/tickle` | from the held session (IBKR's budget is not spent): `session`, `collission`, `iserver.authStatus` |
//! | `GET`/`POST /v1/api/iserver/auth/status` | from the held session: `authenticated`, `competing`, `connected`, `message` |
//! | `GET /v1/api/sso/validate` | from the held session: `RESULT`, `USER_NAME` |
//! | `POST`/`GET /v1/api/logout` | `{"status": true}`: a client's logout does not end the session the others use |
//! | any other `/v1/api/...`, `/gw/api/...` | forwarded to the configured upstream only (method, path, query, body, headers less hop-by-hop, `Host` and any client `Authorization`), paced, IBKR's answer returned as it is, streamed |
//! | `GET /healthz` | the session's state (`200` while `/v1/api` calls can be made, else `503`); with `--redis` also this process's `role` (`owner`, `follower`, `alone`, `unavailable`), the owner's `fence` and the failure's `code` |
//! | `GET /metrics` | with `--metrics`: Prometheus text: requests by endpoint and status (`ibkr_oauth_gateway_requests_total`), answered locally, calls refused for want of a slot (`ibkr_oauth_gateway_busy_total`), calls in flight, the governor's admissions, waits, refusals and 429s, the session's state, its keep-alive latency (`ibkr_oauth_session_tickle_seconds`) and re-opens (`ibkr_oauth_session_reopens_total`) |
//!
//! With `--redis` the session is the fleet's ([`HeldSession::Shared`],
//! [`ibkr_oauth_redis::SharedSession`]): one gateway per username is the elected owner and
//! opens and tickles it, the others forward with the SSO token it publishes in Redis; a call
//! that finds no session gets `503` problem+json with a `code` (e.g.
//! `shared_session_redis_unavailable`).
//!
//! Not an open proxy: only the configured upstream, only those two path prefixes; request
//! bodies are capped ([`MAX_BODY_BYTES`]), upstream calls time out.
//!
//! At most [`Forwarding::max_in_flight`] calls are on their way to IBKR at once (a call holds
//! its slot from before the governor gives it its turn until IBKR's answer is back), so IBKR
//! sees at most the governor's budget plus that many calls in any second, however late calls
//! reach it; `/iserver/marketdata/history` calls are at most [`HISTORY_AT_ONCE`] at once.

mod answers;
mod forward;
mod held;
mod slots;
pub mod tls;

pub use answers::record_session_event;
pub use held::HeldSession;
pub use slots::HISTORY_AT_ONCE;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use ibkr_oauth::pacing::{Paced, Pacer};
use ibkr_oauth::session::SessionSource;
use ibkr_oauth::{ExposeSecret, SecretString, TokenSource};
use reqwest_middleware::ClientWithMiddleware;

use crate::agent::{SECRET_HEADER, constant_time_eq, problem};
use crate::error::Error;

/// The largest request body forwarded (IBKR's request bodies are small JSON documents).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long one forwarded call may take, connecting and reading the whole answer included.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request of the gateway shares; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    session: HeldSession,
    pacer: Arc<dyn Pacer>,
    /// reqwest with the session's SSO bearer on `/v1/api` (401 and no bridge healed once)
    /// and the pacer inside it.
    api: ClientWithMiddleware,
    /// The access token, for `/gw/api` calls.
    tokens: Arc<dyn TokenSource>,
    /// The upstream's base URL, without a trailing `/`.
    upstream: String,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    slots: slots::Slots,
}

/// How the gateway forwards: its bound on calls in flight to IBKR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// Calls on their way to IBKR at once, at most (default [`DEFAULT_MAX_IN_FLIGHT`]). IBKR
    /// may count this many on top of the governor's budget within one second.
    pub max_in_flight: usize,
    /// How long a call waits for a slot before it is refused with 429 (default 2 s, the
    /// governor's default bound).
    pub max_wait: Duration,
}

/// The default bound on calls in flight: enough for IBKR's 50/s over a 100 ms round trip.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 5;

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_wait: ibkr_oauth::pacing::DEFAULT_MAX_WAIT,
        }
    }
}

impl Gateway {
    /// A gateway to `upstream` (IBKR's base URL) holding `session` (its own
    /// [`Session`](ibkr_oauth::session::Session), or the fleet's
    /// [`SharedSession`](ibkr_oauth_redis::SharedSession)), pacing with `pacer`, forwarding as
    /// `forwarding` says; `tokens` authorises the `/gw/api` calls.
    ///
    /// # Errors
    /// [`Error::Config`] for an upstream URL the middlewares refuse (not https, unless loopback).
    pub fn new(
        session: impl Into<HeldSession>,
        tokens: Arc<dyn TokenSource>,
        pacer: Arc<dyn Pacer>,
        upstream: &str,
        forwarding: Forwarding,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .map_err(|e| Error::Agent(format!("could not make the HTTP client ({e})")))?;
        let config = |e: ibkr_oauth::ConfigError| Error::Config(e.to_string());
        let session = session.into();
        let source: Arc<dyn SessionSource> = session.source();
        let api = reqwest_middleware::ClientBuilder::new(http)
            .with(ibkr_oauth::middleware::SessionAuth::from_arc(source, upstream).map_err(config)?)
            .with(Paced::new(Arc::clone(&pacer), upstream).map_err(config)?)
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                session,
                pacer,
                api,
                tokens,
                upstream: upstream.trim_end_matches('/').to_owned(),
                metrics,
                slots: slots::Slots::new(forwarding.max_in_flight, forwarding.max_wait),
            }),
        })
    }

    /// The session it holds.
    pub fn session(&self) -> &HeldSession {
        &self.inner.session
    }

    /// Serves the routes without a secret on `listener` (the CP-compatible loopback port),
    /// over `tls` when given, within the agent's connection limits (header-read timeout,
    /// connection cap), until `shutdown`.
    pub async fn serve_cp_compatible(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tls::CpTls>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let router = self.router(None);
        let accept = || async { listener.accept().await.map(|(io, _)| io) };
        let limits = crate::agent::Limits::for_this_process();
        match tls {
            None => crate::agent::limits::serve(accept, router, limits, shutdown).await,
            Some(tls) => {
                let acceptor = tls.acceptor();
                let handshake = move |io| acceptor.accept(io);
                crate::agent::limits::serve_handshaking(
                    accept, handshake, router, limits, shutdown,
                )
                .await;
            }
        }
    }

    /// The routes, guarded by `secret` (loopback TCP listeners but the CP-compatible one).
    pub fn router(&self, secret: Option<SecretString>) -> Router {
        let router = Router::new()
            .route("/v1/api/tickle", get(answers::tickle).post(answers::tickle))
            .route(
                "/v1/api/iserver/auth/status",
                get(answers::auth_status).post(answers::auth_status),
            )
            .route("/v1/api/sso/validate", get(answers::validate))
            .route("/v1/api/logout", get(answers::logout).post(answers::logout))
            .route("/v1/api/{*rest}", any(forward::forward))
            .route("/gw/api/{*rest}", any(forward::forward))
            .route("/healthz", get(answers::healthz))
            .route("/metrics", get(render_metrics))
            .fallback(not_found)
            .with_state(self.clone());
        match secret {
            Some(secret) => {
                let secret = Arc::new(secret);
                router.layer(axum::middleware::from_fn(
                    move |request: Request, next: Next| {
                        let secret = Arc::clone(&secret);
                        async move {
                            if has_secret(request.headers(), &secret) {
                                next.run(request).await
                            } else {
                                tracing::warn!(
                                    "gateway: refused a request without the agent's secret header"
                                );
                                problem(
                                    StatusCode::UNAUTHORIZED,
                                    &format!("the {SECRET_HEADER} header is missing or wrong"),
                                )
                            }
                        }
                    },
                ))
            }
            None => router,
        }
    }
}

fn has_secret(headers: &HeaderMap, secret: &SecretString) -> bool {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    constant_time_eq(given, secret.expose_secret().as_bytes())
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "the gateway serves only /v1/api/..., /gw/api/..., /healthz and /metrics",
    )
}

async fn render_metrics(State(gateway): State<Gateway>) -> Response {
    let Some(handle) = &gateway.inner.metrics else {
        return problem(
            StatusCode::NOT_FOUND,
            "metrics are off: start the gateway with --metrics",
        );
    };
    let stats = gateway.inner.pacer.stats();
    metrics::counter!("ibkr_oauth_pacing_admitted_total").absolute(stats.admitted);
    metrics::counter!("ibkr_oauth_pacing_waited_total").absolute(stats.waited);
    metrics::counter!("ibkr_oauth_pacing_refused_total").absolute(stats.refused);
    metrics::counter!("ibkr_oauth_pacing_429_total").absolute(stats.paused);
    metrics::gauge!("ibkr_oauth_gateway_in_flight").set(gateway.inner.slots.in_flight() as f64);
    answers::record_session_state(&gateway.inner.session.view());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}
