//! Issue 20: the agent's connection limits in tokio's paused time (no real waits): a request
//! whose headers never end is closed at the header timeout, an idle connection by the idle
//! timeout, and at the cap the connection idle for longest makes room for a new one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient, TokenSource};
use ibkr_oauth_cli::agent::{Bound, Limits, Listen, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::time::Instant;

const LIMITS: Limits = Limits {
    max_connections: 4,
    header_timeout: Duration::from_secs(5),
    idle_timeout: Duration::from_secs(10),
};

/// A source never asked: no request here reaches a handler.
fn unused_source() -> Arc<dyn TokenSource> {
    let key = PrivateKey::generate(Algorithm::ES256).expect("a key");
    let signer = Signer::builder("c", "k", key).build().expect("a signer");
    let client = TokenClient::builder()
        .base_url("http://127.0.0.1:9")
        .build()
        .expect("a client");
    Arc::new(
        TokenProvider::builder(client, signer)
            .build()
            .expect("a provider"),
    )
}

async fn agent() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a dir");
    let path = dir.path().join("agent.sock");
    let bound = Bound::bind(Listen::Unix {
        path: path.clone(),
        group: None,
    })
    .await
    .expect("bound")
    .with_limits(LIMITS);
    tokio::spawn(serve(unused_source(), bound, std::future::pending()));
    (dir, path)
}

/// Reads until the agent closes the connection; how long that took (paused time).
async fn until_closed(stream: &mut UnixStream) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    // A minute of paused time: without limits the agent would keep it open for ever.
    let _read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut sink))
        .await
        .expect("the agent closed the connection");
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn headers_that_never_end_are_cut_at_the_header_timeout() {
    let (_dir, path) = agent().await;
    let mut slow = UnixStream::connect(&path).await.expect("connect");
    slow.write_all(b"GET /token HTTP/1.1\r\nHost: agent\r\n")
        .await
        .expect("a partial request");
    let took = until_closed(&mut slow).await;
    assert!(
        took >= LIMITS.header_timeout && took < LIMITS.idle_timeout,
        "closed after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed() {
    let (_dir, path) = agent().await;
    let mut idle = UnixStream::connect(&path).await.expect("connect");
    let took = until_closed(&mut idle).await;
    assert!(took <= LIMITS.idle_timeout, "closed after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let (_dir, path) = agent().await;
    let mut oldest = UnixStream::connect(&path).await.expect("connect");
    let mut others = Vec::new();
    for _ in 0..LIMITS.max_connections {
        others.push(UnixStream::connect(&path).await.expect("connect"));
        tokio::task::yield_now().await;
    }
    let took = until_closed(&mut oldest).await;
    assert!(took < LIMITS.header_timeout, "shed after {took:?}");
}
