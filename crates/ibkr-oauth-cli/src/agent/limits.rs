//! The agent's connection limits, so that no local user can stall it: a bound on the time to
//! send a request's headers and on a connection's idle time, and a cap on open connections
//! below the process's open-file limit. At the cap, the connection idle for longest is closed
//! to admit the new one: a client that sends its request at once is served while hostile
//! connections sit idle or trickle headers. The same accept loop serves the unix socket and
//! loopback TCP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Descriptors left for the rest of the process (the runtime, Redis, the token client, logs).
const FD_RESERVE: u64 = 64;
/// The cap when the open-file limit is high: each connection costs memory too.
const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight requests may finish after a stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The agent's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most (the unix socket and loopback TCP alike).
    pub max_connections: usize,
    /// A request's headers must arrive within this time.
    pub header_timeout: Duration,
    /// A connection with no request in a handler for this long is closed.
    pub idle_timeout: Duration,
}

impl Limits {
    /// Limits for this process: at most 1024 connections, and below the open-file limit
    /// with room for the rest of the process; headers within 5 s; idle 10 s.
    pub fn for_this_process() -> Self {
        Self {
            max_connections: connections_below(open_file_limit()),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The soft open-file limit, if the system tells it.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The connection cap under an open-file limit: half of what the reserve leaves, so that
/// descriptors of connections being closed and of accepts in flight still fit; at least 8.
fn connections_below(limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return MAX_CONNECTIONS.min(128);
    };
    let room = limit.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(8, MAX_CONNECTIONS)
}

/// The open connections: which are in a handler, and since when the others are idle.
#[derive(Default)]
struct Table {
    next_id: u64,
    slots: HashMap<u64, Slot>,
}

struct Slot {
    /// Requests of this connection in a handler now.
    busy: usize,
    /// When it last became idle (or opened).
    idle_since: Instant,
    /// Closes it (to admit a newer one).
    shed: Arc<Notify>,
}

#[derive(Clone, Default)]
struct Connections {
    table: Arc<Mutex<Table>>,
    emptied: Arc<Notify>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more under `max`: closes the connection idle for longest. `None`
    /// when every connection is in a handler (the newcomer is turned away).
    fn admit(&self, max: usize) -> Option<(u64, Arc<Notify>)> {
        let mut table = self.lock();
        if table.slots.len() >= max {
            let oldest = table
                .slots
                .iter()
                .filter(|(_, slot)| slot.busy == 0)
                // Ties (one instant) go to the older connection: the lower id.
                .min_by_key(|(id, slot)| (slot.idle_since, **id))
                .map(|(id, _)| *id)?;
            if let Some(slot) = table.slots.remove(&oldest) {
                slot.shed.notify_one();
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let shed = Arc::new(Notify::new());
        table.slots.insert(
            id,
            Slot {
                busy: 0,
                idle_since: Instant::now(),
                shed: Arc::clone(&shed),
            },
        );
        Some((id, shed))
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(slot) = self.lock().slots.get_mut(&id) {
            if busy {
                slot.busy += 1;
            } else {
                slot.busy = slot.busy.saturating_sub(1);
                if slot.busy == 0 {
                    slot.idle_since = Instant::now();
                }
            }
        }
    }

    /// When `id` will have been idle too long (`None`: in a handler, or gone).
    fn idle_deadline(&self, id: u64, idle: Duration) -> Option<Instant> {
        let table = self.lock();
        let slot = table.slots.get(&id)?;
        (slot.busy == 0).then(|| slot.idle_since + idle)
    }

    fn remove(&self, id: u64) {
        let mut table = self.lock();
        table.slots.remove(&id);
        if table.slots.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().slots.is_empty()
    }
}

/// Marks a connection busy while a handler runs.
struct Busy {
    connections: Connections,
    id: u64,
}

impl Busy {
    fn new(connections: &Connections, id: u64) -> Self {
        connections.set_busy(id, true);
        Self {
            connections: connections.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.connections.set_busy(self.id, false);
    }
}

/// Accepts with `accept` and serves `router` on each connection within `limits`, until
/// `shutdown`; then lets requests in flight finish (bounded) and returns.
pub(crate) async fn serve<S, A, F>(
    accept: A,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: FnMut() -> F,
    F: Future<Output = io::Result<S>>,
{
    serve_handshaking(
        accept,
        |io| std::future::ready(Ok(io)),
        router,
        limits,
        shutdown,
    )
    .await;
}

/// As [`serve`], with `handshake` (e.g. TLS) run on each accepted connection in its own task,
/// within the header timeout, so that a client that never finishes it stalls no one.
pub(crate) async fn serve_handshaking<P, S, A, F, H, HF>(
    mut accept: A,
    handshake: H,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    P: Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: FnMut() -> F,
    F: Future<Output = io::Result<P>>,
    H: Fn(P) -> HF + Clone + Send + 'static,
    HF: Future<Output = io::Result<S>> + Send + 'static,
{
    let connections = Connections::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let io = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept() => match accepted {
                Ok(io) => io,
                Err(error) => {
                    // Out of descriptors, or a connection reset before accept: pause briefly
                    // rather than spin.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((id, shed)) = connections.admit(limits.max_connections) else {
            tracing::warn!(
                max = limits.max_connections,
                "every connection is busy; turned a new one away"
            );
            continue;
        };
        let (handshake, connections, router, stop) = (
            handshake.clone(),
            connections.clone(),
            router.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            match tokio::time::timeout(limits.header_timeout, handshake(io)).await {
                Ok(Ok(io)) => connection(io, id, shed, connections, router, limits, stop).await,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "a connection's handshake failed");
                    connections.remove(id);
                }
                Err(_) => {
                    tracing::debug!("a connection's handshake took too long");
                    connections.remove(id);
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    let drained = async {
        while !connections.is_empty() {
            let emptied = connections.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if connections.is_empty() {
                break;
            }
            emptied.await;
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
}

async fn connection<S>(
    io: S,
    id: u64,
    shed: Arc<Notify>,
    connections: Connections,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracked = connections.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(&tracked, id);
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(busy);
            response.map_err(|never: Infallible| match never {})
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    loop {
        let deadline = connections
            .idle_deadline(id, limits.idle_timeout)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            _ = &mut conn => break,
            () = shed.notified() => {
                tracing::debug!("closed the connection idle for longest, to admit a new one");
                break;
            }
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut conn).await;
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                if connections
                    .idle_deadline(id, limits.idle_timeout)
                    .is_some_and(|d| d <= Instant::now())
                {
                    tracing::debug!("closed an idle connection");
                    break;
                }
            }
        }
    }
    connections.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_under_the_open_file_limit() {
        assert_eq!(connections_below(Some(256)), 96);
        assert_eq!(connections_below(Some(1_048_576)), MAX_CONNECTIONS);
        assert_eq!(connections_below(Some(20)), 8);
        assert_eq!(connections_below(None), 128);
        let limits = Limits::for_this_process();
        let fds = open_file_limit().unwrap_or(u64::MAX);
        assert!((limits.max_connections as u64) < fds, "{limits:?}");
    }

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let connections = Connections::default();
        let (first, first_shed) = connections.admit(2).unwrap();
        let (second, _) = connections.admit(2).unwrap();
        // The first is in a handler: the second, idle, goes.
        connections.set_busy(first, true);
        let (_third, _) = connections.admit(2).unwrap();
        assert!(!connections.lock().slots.contains_key(&second));
        assert!(connections.lock().slots.contains_key(&first));
        // All busy: turned away.
        let lock = connections.lock().slots.keys().copied().collect::<Vec<_>>();
        for id in lock {
            connections.set_busy(id, true);
        }
        assert!(connections.admit(2).is_none());
        drop(first_shed);
    }
}
