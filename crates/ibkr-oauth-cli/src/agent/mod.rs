//! The local token agent behind `ibkr-oauth serve`: one [`TokenSource`] (a `TokenProvider`, or
//! the Redis-shared source) behind a small HTTP server, so that programs in any language on
//! this host share one token instead of each fetching its own.
//!
//! | route | answer |
//! |---|---|
//! | `GET /token` | `200`: the token as the [contract](crate::contract)'s object, `{"version": 1, "access_token", "token_type", "expires_at" (RFC 3339), "scope"}` |
//! | `POST /token/invalidate` | body `{"access_token": "<the refused token>"}`: `200 {"invalidated": bool}` |
//! | `GET /healthz` | `200 {"status": "ok", "expires_at"}` (RFC 3339) while a valid token can be had, else `503` |
//! | `GET /metrics` | with `serve --metrics`: Prometheus text (token requests by outcome, refreshes ahead, stale tokens served, seconds until expiry, lease waits, Redis fallbacks, agent requests) |
//!
//! `expires_at` was Unix seconds before the contract's version 1; it is RFC 3339 now, in
//! `/token` and `/healthz` alike (a client reading only `access_token` is unaffected).
//!
//! It listens on a unix socket (mode 0600, or 0660 for a group the user names) or on a
//! loopback TCP port with a required secret header ([`SECRET_HEADER`]); it refuses to bind
//! anything else. The token is never logged.
//!
//! No local user can stall it (see [`Limits`]): a request's headers must arrive within 5 s, a
//! connection idle for 10 s is closed, and open connections stay below the open-file limit;
//! at that cap the connection idle for longest is closed to admit a new one. On loopback TCP
//! the secret is checked as soon as the headers are in.
//!
//! ```text
//! curl --unix-socket "$XDG_RUNTIME_DIR/ibkr-oauth.sock" http://agent/token
//! ```
//! ```text
//! # Python (requests-unixsocket, or the standard library):
//! import http.client, json, socket
//! class Unix(http.client.HTTPConnection):
//!     def connect(self):
//!         self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(PATH)
//! c = Unix("agent"); c.request("GET", "/token"); token = json.load(c.getresponse())["access_token"]
//! ```
//! ```text
//! // Node:
//! http.get({ socketPath: path, path: "/token" }, res => { /* JSON: access_token ... */ });
//! ```

mod limits;
mod listen;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ibkr_oauth::{ExposeSecret, SecretString, Token, TokenSource};
use serde_json::{Value, json};

pub use limits::Limits;
pub use listen::{Bound, Listen, SECRET_HEADER, SOCKET_VAR, default_socket_path};

/// Installs the Prometheus recorder for the metrics facade (once per process) and returns the
/// handle that renders it.
///
/// # Errors
/// [`Error::Agent`] if a recorder is installed already.
pub fn install_metrics() -> Result<metrics_exporter_prometheus::PrometheusHandle, Error> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::Agent(format!("could not install the metrics recorder ({e})")))
}

use crate::error::Error;

/// What every request handler shares.
#[derive(Clone)]
struct Shared {
    source: Arc<dyn TokenSource>,
    /// Renders what the metrics facade recorded, when `--metrics` installed a recorder.
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Required in [`SECRET_HEADER`] on loopback TCP; `None` on a unix socket (the file's
    /// permissions guard it).
    secret: Option<Arc<SecretString>>,
}

/// Serves `source` on `bound` until `shutdown` completes, then removes the socket file.
///
/// # Errors
/// [`Error::Agent`] if serving fails.
pub async fn serve(
    source: Arc<dyn TokenSource>,
    bound: Bound,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_with_metrics(source, bound, None, shutdown).await
}

/// As [`serve`], with `GET /metrics` rendering `metrics` (Prometheus text).
///
/// # Errors
/// [`Error::Agent`] if serving fails.
pub async fn serve_with_metrics(
    source: Arc<dyn TokenSource>,
    bound: Bound,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (listener, secret) = bound.into_parts();
    let shared = Shared {
        source,
        metrics,
        secret: secret.map(Arc::new),
    };
    let router = Router::new()
        .route("/token", get(token))
        .route("/token/invalidate", post(invalidate))
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_secret,
        ))
        .with_state(shared);
    listener.serve(router, shutdown).await
}

/// The routes, for the 404 and 405 answers.
const ROUTES: &str = "GET /token, POST /token/invalidate, GET /healthz, GET /metrics";

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        &format!("no such route; the agent serves {ROUTES}"),
    )
}

async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("wrong method for this route; the agent serves {ROUTES}"),
    )
}

/// Refuses a loopback TCP request without the secret (constant-time comparison): the
/// refusal to send, or `None` to go on.
fn refused(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let secret = shared.secret.as_ref()?;
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(given, secret.expose_secret().as_bytes()) {
        None
    } else {
        tracing::warn!("refused a request without the agent's secret header");
        Some(problem(
            StatusCode::UNAUTHORIZED,
            &format!("the {SECRET_HEADER} header is missing or wrong"),
        ))
    }
}

/// Compares the SHA-256 digests of both sides in constant time: neither the content nor the
/// length of the secret shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Checks the secret as soon as the headers are in, before any body is read.
async fn require_secret(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match refused(&shared, request.headers()) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The source's error as the agent's answer: 502 for the token server's refusals and
/// failures (the agent itself works), 503 otherwise. Server text is already sanitised.
fn source_failed(error: &ibkr_oauth::Error) -> Response {
    let status = match error.kind() {
        ibkr_oauth::ErrorKind::Refused
        | ibkr_oauth::ErrorKind::Transport
        | ibkr_oauth::ErrorKind::InvalidResponse => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::warn!(error = %error, "no token to hand out");
    problem(status, &ibkr_oauth::sanitize(&error.to_string(), 500))
}

async fn render_metrics(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    match &shared.metrics {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            handle.render(),
        )
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "metrics are off: start the agent with --metrics",
        ),
    }
}

async fn token(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    metrics::counter!("ibkr_oauth_agent_requests_total", "route" => "token").increment(1);
    match shared.source.access_token().await {
        Ok(token) => {
            tracing::debug!(expires_at = %crate::contract::rfc3339(token.expires_at()), "handed out the token");
            let body = crate::contract::token_object(&token, true);
            (
                [
                    (axum::http::header::CONTENT_TYPE, "application/json"),
                    (axum::http::header::CACHE_CONTROL, "no-store"),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Err(error) => source_failed(&error),
    }
}

async fn invalidate(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    let reported = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned));
    let Some(reported) = reported else {
        return problem(
            StatusCode::BAD_REQUEST,
            "send {\"access_token\": \"<the token the API refused>\"}",
        );
    };
    let token = match Token::builder(SecretString::from(reported)).build() {
        Ok(token) => token,
        Err(_) => return problem(StatusCode::BAD_REQUEST, "that is not a bearer token"),
    };
    let invalidated = shared.source.invalidate(&token).await;
    tracing::info!(invalidated, "a client reported a refused token");
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({ "invalidated": invalidated }).to_string(),
    )
        .into_response()
}

async fn healthz(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    match shared.source.access_token().await {
        Ok(token) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json!({ "status": "ok", "expires_at": crate::contract::rfc3339(token.expires_at()) })
                .to_string(),
        )
            .into_response(),
        Err(error) => {
            let mut response = source_failed(&error);
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}
