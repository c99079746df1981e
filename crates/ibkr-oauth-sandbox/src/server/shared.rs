//! The state every request and the handle share, and the steps every handler takes: record
//! the request, answer it (log, trace line, request id), or close the connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::log::{Endpoint, RecordedForm, RecordedRequest, RequestLog, bounded};
use crate::protocol::REQUEST_ID_HEADER;
use crate::token::{Minter, random_id};
use crate::trace::Line;
use crate::verify::{Grant, Refusal, quote};
use crate::{AccessTokenClaims, Error, Fault, Outcome, response};

/// Above this many remembered `jti`s, the ones whose assertion has expired are forgotten.
const JTI_PRUNE_THRESHOLD: usize = 1024;

/// State shared by the handle and every request.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) clock: Clock,
    pub(super) minter: Minter,
    pub(super) faults: Mutex<VecDeque<Fault>>,
    pub(super) log: Mutex<RequestLog>,
    /// The request count; a watch channel so that tests can await a count.
    pub(super) received: watch::Sender<u64>,
    pub(super) tokens_issued: AtomicU64,
    /// `(client id, jti)` -> the assertion's `exp`.
    pub(super) seen_jtis: Mutex<HashMap<(String, String), i64>>,
    /// The `jti`s of access tokens revoked one by one.
    pub(super) revoked_jtis: Mutex<HashSet<String>>,
    /// Every access token whose serial is at most this is revoked.
    pub(super) revoked_through: AtomicU64,
    /// For request ids when the system gives no randomness.
    pub(super) next_request: AtomicU64,
    /// The SSO and brokerage sessions.
    pub(super) sessions: Mutex<crate::session::Sessions>,
    /// Per-username pacing, when configured.
    pub(super) pacing: Option<Mutex<crate::pacing::Pacing>>,
    pub(super) shutdown: watch::Sender<bool>,
}

/// A poisoned lock only means a panic elsewhere; the data (a log, a queue) is still usable.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Put on a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub(super) struct CloseConnection;

/// Resolves once shutdown is asked for (or its sender is gone, which means the same).
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A recorded request being handled: what its answer updates in the log and its trace line.
pub(super) struct Exchange {
    pub(super) seq: u64,
    pub(super) request_id: String,
    pub(super) endpoint: Endpoint,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) client_id: Option<String>,
    pub(super) kid: Option<String>,
}

/// A request body, read up to the configured limit.
pub(super) enum BodyRead {
    /// The bytes, or the detail of a refusal (too large, unreadable).
    Read(Result<Bytes, String>),
    /// Shutdown came first: the request was not received.
    Shutdown,
}

impl Shared {
    /// The log entry of a request, before it is recorded (its `seq` is set by `record`).
    pub(super) fn arrival(&self, parts: &Parts, endpoint: Endpoint) -> RecordedRequest {
        let header = |name: HeaderName| header_string(&parts.headers, &name);
        let request_id = random_id().unwrap_or_else(|| {
            format!("req-{}", self.next_request.fetch_add(1, Ordering::Relaxed))
        });
        RecordedRequest {
            seq: 0,
            request_id,
            endpoint,
            client_id: None,
            kid: None,
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
            signed_body_header: None,
            signed_body_claims: None,
            fault: None,
            outcome: Outcome::Pending,
        }
    }

    /// Counts the request and logs it in one step, so that whoever sees the count (as
    /// `wait_for_requests` does) finds the entry in the log.
    pub(super) fn record(&self, mut entry: RecordedRequest) -> Exchange {
        let mut log = lock(&self.log);
        self.received.send_modify(|count| {
            *count += 1;
            entry.seq = *count;
        });
        let exchange = Exchange {
            seq: entry.seq,
            request_id: entry.request_id.clone(),
            endpoint: entry.endpoint,
            method: entry.method.clone(),
            path: entry.path.clone(),
            client_id: entry.client_id.clone(),
            kid: entry.kid.clone(),
        };
        log.push(entry);
        exchange
    }

    /// Logs the outcome, writes the trace line and adds the request id to the response.
    pub(super) fn answer(
        &self,
        exchange: &Exchange,
        status: StatusCode,
        detail: Option<&str>,
        mut response: Response,
    ) -> Response {
        let outcome = Outcome::Answered {
            status: status.as_u16(),
            detail: detail.map(str::to_owned),
        };
        self.finish(exchange, outcome, Some(status.as_u16()), detail);
        if let Ok(id) = HeaderValue::from_str(&exchange.request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
        }
        response
    }

    pub(super) fn refuse(&self, exchange: &Exchange, status: StatusCode, detail: &str) -> Response {
        self.answer(
            exchange,
            status,
            Some(detail),
            response::problem(status, detail),
        )
    }

    pub(super) fn close(&self, exchange: &Exchange) -> Response {
        self.finish(exchange, Outcome::ConnectionClosed, None, None);
        close_connection()
    }

    fn finish(
        &self,
        exchange: &Exchange,
        outcome: Outcome,
        status: Option<u16>,
        detail: Option<&str>,
    ) {
        lock(&self.log).update(exchange.seq, |entry| {
            entry.outcome = outcome;
            entry.client_id.clone_from(&exchange.client_id);
            entry.kid.clone_from(&exchange.kid);
        });
        if let Some(sink) = &self.config.trace {
            let line = Line {
                unix_secs: self.clock.unix_secs(),
                request_id: &exchange.request_id,
                client_id: exchange.client_id.as_deref(),
                kid: exchange.kid.as_deref(),
                endpoint: exchange.endpoint,
                method: &exchange.method,
                path: &exchange.path,
                status,
                detail,
            };
            sink.emit(&line.to_string());
        }
    }

    pub(super) async fn until_shutdown(&self) {
        stopped(&mut self.shutdown.subscribe()).await;
    }

    /// Reads the body up to `max_body_bytes`, refusing a larger one by its `Content-Length`
    /// before reading it.
    pub(super) async fn read_body(&self, headers: &HeaderMap, body: Body) -> BodyRead {
        let limit = self.config.max_body_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > limit as u64) {
            return BodyRead::Read(Err(format!(
                "request body: {len} bytes is more than the {limit}-byte limit"
            )));
        }
        tokio::select! {
            // Biased: a body already here is read, and its request handled, even at shutdown.
            biased;
            read = axum::body::to_bytes(body, limit) => BodyRead::Read(read.map_err(|_| {
                format!("request body: unreadable or more than the {limit}-byte limit")
            })),
            // A client that stops sending mid-body must not hold shutdown. The request was
            // not received (its body not read): it is neither counted nor logged.
            () = self.until_shutdown() => BodyRead::Shutdown,
        }
    }

    pub(super) fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop_front()
    }

    /// Records the `jti` unless it was used before: check and record under one lock, so two
    /// concurrent requests with one assertion cannot both pass.
    pub(super) fn remember_jti(&self, grant: &Grant, now: i64) -> Result<(), Refusal> {
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

    /// Checks an access token as the protected resource does: signed by this sandbox, not
    /// expired by its clock, not revoked.
    pub(super) fn check_access_token(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        let claims = self.minter.verify(token, self.clock.unix_secs())?;
        if claims.serial <= self.revoked_through.load(Ordering::Relaxed)
            || lock(&self.revoked_jtis).contains(&claims.jti)
        {
            return Err(Error::InvalidAccessToken("revoked".into()));
        }
        Ok(claims)
    }
}

/// A response that makes the connection close without an answer.
pub(super) fn close_connection() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(CloseConnection);
    response
}

fn header_string(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| bounded(&String::from_utf8_lossy(v.as_bytes())))
}
