//! The HTTP side: the accept loop, the endpoint's handlers, and the running sandbox's handle.
//!
//! Connections are served by hyper directly (not `axum::serve`) so that a handler can make the
//! connection close without an answer: a fault that `axum::serve` cannot produce.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::log::{MAX_DECODED_ASSERTION_BYTES, RecordedForm, RecordedRequest, RequestLog, bounded};
use crate::token::Minter;
use crate::verify::{self, Grant, Refusal, quote};
use crate::{AccessTokenClaims, Error, Fault, Outcome, Sandbox, response};

/// The token endpoint's path, as in `openapi.yaml`.
pub const TOKEN_PATH: &str = "/oauth2/api/v1/token";

/// Above this many remembered `jti`s, the ones whose assertion has expired are forgotten.
const JTI_PRUNE_THRESHOLD: usize = 1024;

/// How long shutdown waits for a connection to finish after asking it to close; then it is
/// dropped. Without it a client that sent part of a request head would hold shutdown forever.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// State shared by the handle and every request.
struct Shared {
    config: Config,
    clock: Clock,
    minter: Minter,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<RequestLog>,
    /// The request count; a watch channel so that tests can await a count.
    received: watch::Sender<u64>,
    tokens_issued: AtomicU64,
    /// `(client id, jti)` -> the assertion's `exp`.
    seen_jtis: Mutex<HashMap<(String, String), i64>>,
    shutdown: watch::Sender<bool>,
}

/// A poisoned lock only means a panic elsewhere; the data (a log, a queue) is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Put on a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
struct CloseConnection;

/// The service error that makes hyper drop the connection without answering.
#[derive(Debug)]
struct ClosedOnPurpose;

impl fmt::Display for ClosedOnPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by an injected fault or by shutdown")
    }
}

impl std::error::Error for ClosedOnPurpose {}

pub(crate) async fn start(sandbox: Sandbox, addr: SocketAddr) -> Result<RunningSandbox, Error> {
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
    let shared = Arc::new(Shared {
        log: Mutex::new(RequestLog::new(config.request_log_capacity)),
        config,
        clock: Clock::new(clock_offset_secs),
        minter,
        faults: Mutex::new(VecDeque::new()),
        received: watch::Sender::new(0),
        tokens_issued: AtomicU64::new(0),
        seen_jtis: Mutex::new(HashMap::new()),
        shutdown: watch::Sender::new(false),
    });
    let router = Router::new()
        .route(TOKEN_PATH, post(token_endpoint))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(Arc::clone(&shared));
    let task = tokio::spawn(accept_loop(listener, router, Arc::clone(&shared)));
    tracing::debug!(%local_addr, "sandbox started");
    Ok(RunningSandbox {
        shared,
        local_addr,
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, router: Router, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), Arc::clone(&shared)));
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

/// Resolves once shutdown is asked for (or its sender is gone, which means the same).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(stream: TcpStream, router: Router, shared: Arc<Shared>) {
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

impl Shared {
    /// The log entry of a request, before it is recorded (its `seq` is set by `record`).
    fn arrival(&self, parts: &Parts) -> RecordedRequest {
        let header = |name: HeaderName| header_string(&parts.headers, &name);
        RecordedRequest {
            seq: 0,
            received_at: self.clock.now(),
            method: bounded(parts.method.as_str()),
            path: bounded(parts.uri.path()),
            content_type: header(CONTENT_TYPE),
            accept: header(ACCEPT),
            user_agent: header(USER_AGENT),
            body_len: None,
            form: RecordedForm::default(),
            assertion_header: None,
            assertion_claims: None,
            fault: None,
            outcome: Outcome::Pending,
        }
    }

    /// Counts the request and logs it in one step, so that whoever sees the count (as
    /// `wait_for_requests` does) finds the entry in the log.
    fn record(&self, mut entry: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        self.received.send_modify(|count| {
            *count += 1;
            entry.seq = *count;
        });
        let seq = entry.seq;
        log.push(entry);
        seq
    }

    fn answer(
        &self,
        seq: u64,
        status: StatusCode,
        detail: Option<&str>,
        response: Response,
    ) -> Response {
        let outcome = Outcome::Answered {
            status: status.as_u16(),
            detail: detail.map(str::to_owned),
        };
        lock(&self.log).finish(seq, outcome);
        response
    }

    fn refuse(&self, seq: u64, status: StatusCode, detail: &str) -> Response {
        self.answer(seq, status, Some(detail), response::problem(status, detail))
    }

    fn close(&self, seq: u64) -> Response {
        lock(&self.log).finish(seq, Outcome::ConnectionClosed);
        close_connection()
    }

    async fn until_shutdown(&self) {
        stopped(&mut self.shutdown.subscribe()).await;
    }

    fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop_front()
    }

    /// Records the `jti` unless it was used before: check and record under one lock, so two
    /// concurrent requests with one assertion cannot both pass.
    fn remember_jti(&self, grant: &Grant, now: i64) -> Result<(), Refusal> {
        let mut seen = lock(&self.seen_jtis);
        if seen.len() >= JTI_PRUNE_THRESHOLD {
            seen.retain(|_, exp| *exp > now);
        }
        let key = (grant.client_id.clone(), grant.jti.clone());
        if seen.contains_key(&key) {
            return Err(Refusal(format!(
                "client_assertion: jti {} was already used (replay)",
                quote(&grant.jti)
            )));
        }
        seen.insert(key, grant.assertion_exp);
        Ok(())
    }
}

/// A response that makes the connection close without an answer.
fn close_connection() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(CloseConnection);
    response
}

fn header_string(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| bounded(&String::from_utf8_lossy(v.as_bytes())))
}

async fn token_endpoint(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut entry = shared.arrival(&parts);
    let limit = shared.config.max_body_bytes;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match declared {
        Some(len) if len > limit as u64 => Err(format!(
            "request body: {len} bytes is more than the {limit}-byte limit"
        )),
        _ => tokio::select! {
            // Biased: a body already here is read, and its request handled, even at shutdown.
            biased;
            read = axum::body::to_bytes(body, limit) => read.map_err(|_| {
                format!("request body: unreadable or more than the {limit}-byte limit")
            }),
            // A client that stops sending mid-body must not hold shutdown. The request was
            // not received (its body not read): it is neither counted nor logged.
            () = shared.until_shutdown() => return close_connection(),
        },
    };
    let content_type = entry.content_type.clone();
    let mut form = Vec::new();
    if let Ok(bytes) = &body {
        entry.body_len = Some(bytes.len());
        if content_type
            .as_deref()
            .is_some_and(verify::is_form_content_type)
        {
            form = verify::parse_form(bytes);
            entry.form = RecordedForm::from_fields(&form);
            if let Some((_, assertion)) = form
                .iter()
                .find(|(k, _)| k == "client_assertion")
                .filter(|(_, assertion)| assertion.len() <= MAX_DECODED_ASSERTION_BYTES)
            {
                (entry.assertion_header, entry.assertion_claims) =
                    verify::peek_assertion(assertion);
            }
        }
    }
    let fault = shared.next_fault();
    entry.fault.clone_from(&fault);
    let seq = shared.record(entry);

    match fault {
        None => {}
        Some(Fault::ServerError) => {
            return shared.refuse(
                seq,
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected fault: the sandbox was told to fail this request",
            );
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let secs = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            let detail = format!("injected fault: too many requests; retry after {secs} seconds");
            let response = response::too_many_requests(secs, &detail);
            return shared.answer(seq, StatusCode::TOO_MANY_REQUESTS, Some(&detail), response);
        }
        Some(Fault::CloseConnection) => return shared.close(seq),
        Some(Fault::StallForever) => {
            shared.until_shutdown().await;
            return shared.close(seq);
        }
        Some(Fault::Stall(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.until_shutdown() => return shared.close(seq),
            }
        } // `Fault` is non-exhaustive only for users; every variant is handled above.
    }

    if let Err(detail) = body {
        return shared.refuse(seq, StatusCode::BAD_REQUEST, &detail);
    }
    let now = shared.clock.unix_secs();
    let grant = match verify::check(&shared.config, now, content_type.as_deref(), &form)
        .and_then(|grant| shared.remember_jti(&grant, now).map(|()| grant))
    {
        Ok(grant) => grant,
        Err(Refusal(detail)) => return shared.refuse(seq, StatusCode::BAD_REQUEST, &detail),
    };
    let scope = (!grant.scopes.is_empty()).then(|| grant.scopes.join(" "));
    let expires_in = shared.config.expires_in_secs;
    match shared
        .minter
        .mint(&grant.client_id, scope.as_deref(), now, expires_in)
    {
        Some(token) => {
            shared.tokens_issued.fetch_add(1, Ordering::Relaxed);
            let response = response::token(&token, scope.as_deref(), expires_in);
            shared.answer(seq, StatusCode::OK, None, response)
        }
        None => shared.refuse(
            seq,
            StatusCode::INTERNAL_SERVER_ERROR,
            "access token: could not be signed (no randomness for its jti)",
        ),
    }
}

async fn method_not_allowed(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let seq = shared.record(shared.arrival(&parts));
    let detail = format!(
        "method {} is not allowed; the token endpoint is POST {TOKEN_PATH}",
        quote(parts.method.as_str())
    );
    let mut response = shared.refuse(seq, StatusCode::METHOD_NOT_ALLOWED, &detail);
    // RFC 9110 section 15.5.6: a 405 lists the allowed methods. Set here, not left to axum's
    // router (which sets it only when the handler has not).
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn not_found(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let seq = shared.record(shared.arrival(&parts));
    let detail = format!(
        "no endpoint at {}; the token endpoint is POST {TOKEN_PATH}",
        quote(parts.uri.path())
    );
    shared.refuse(seq, StatusCode::NOT_FOUND, &detail)
}

/// A started sandbox: where it listens, and the controls a test uses on it.
///
/// Dropping it stops the server (in the background); [`shutdown`](Self::shutdown) stops it and
/// waits until every connection is closed. It is `Send + Sync`: share it behind an `Arc` to
/// inject faults from another task.
pub struct RunningSandbox {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("base_url", &self.base_url())
            .field("clock_offset_secs", &self.clock_offset())
            .field("request_count", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl RunningSandbox {
    /// The address the sandbox listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL to give a client, such as `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The token endpoint's full URL: [`base_url`](Self::base_url) followed by [`TOKEN_PATH`].
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// The `aud` the sandbox expects in assertions.
    pub fn audience(&self) -> &str {
        &self.shared.config.audience
    }

    /// Stops accepting, closes idle connections and stalled requests, lets requests being
    /// handled finish, and returns when all connections are closed. A connection still open
    /// after a grace period of one second (a client that sent part of a request, say) is
    /// dropped.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Queues `fault` for the next `times` token requests, after any fault already queued.
    pub fn inject_fault(&self, fault: Fault, times: usize) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, times));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many queued faults are left.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Sets the sandbox's clock this many seconds ahead of (positive) or behind (negative) the
    /// system clock. It drives the `Date` header, the assertion's `exp`/`iat`/`nbf` checks and
    /// the issued tokens' `iat`/`exp`.
    pub fn set_clock_offset(&self, offset_secs: i64) {
        self.shared.clock.set_offset_secs(offset_secs);
    }

    /// The clock offset in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.shared.clock.offset_secs()
    }

    /// The sandbox's current time (system clock plus offset, whole seconds).
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// The requests received, oldest first (at most the log's capacity, the newest kept).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).snapshot()
    }

    /// The newest request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.log).last()
    }

    /// Empties the request log; the count goes on.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many requests have been received (head and body read) since the start, on any path,
    /// answered or not.
    pub fn request_count(&self) -> u64 {
        *self.shared.received.borrow()
    }

    /// Waits until at least `count` requests have been received, and so are in the log: the
    /// way to know that a stalled request has reached the sandbox without sleeping.
    pub async fn wait_for_requests(&self, count: u64) {
        let mut received = self.shared.received.subscribe();
        // The sender lives in `shared`, which `self` holds: this cannot fail.
        let _ = received.wait_for(|n| *n >= count).await;
    }

    /// How many access tokens the sandbox has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::Relaxed)
    }

    /// Checks an access token as a resource server would: signed by this sandbox, not expired
    /// by its clock.
    ///
    /// # Errors
    /// [`Error::InvalidAccessToken`] saying why it is refused.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        self.shared
            .minter
            .verify(token, self.shared.clock.unix_secs())
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        // The accept loop and the connections see this and stop on their own.
        self.shared.shutdown.send_replace(true);
    }
}
