//! One `/v1/api` call through the session middleware ([`SessionAuth`] over a real, opened
//! [`Session`]) against plain reqwest with the `Authorization` header set by hand, to the same
//! local mockito server with the same reqwest client underneath.
//!
//! - `session_call/{session_auth,reqwest_by_hand}`: criterion's two groups.
//! - Then the two alternate, request by request (as `provider.rs`'s `fetch` does), and the
//!   ratio of their medians is printed: the figure to quote (goal: at most 1.10x), since the
//!   loopback's speed drifts between criterion's groups.
//!
//! Short run: `cargo bench -p ibkr-oauth --features middleware --bench session -- --warm-up-time
//! 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::session::{Session, SessionConfig};
use ibkr_oauth::{Algorithm, ExposeSecret, FixedToken, PrivateKey, SecretString, Signer, Token};
use mockito::{Server, ServerGuard};
use tokio::runtime::Runtime;

const PATH: &str = "/v1/api/portfolio/accounts";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A local IBKR: an SSO session for anyone, and an accounts list about the size of a small
/// account's answer.
fn server(rt: &Runtime) -> ServerGuard {
    rt.block_on(async {
        let mut server = Server::new_async().await;
        server
            .mock("POST", "/gw/api/v1/sso-sessions")
            .with_header("content-type", "application/json")
            .with_body(format!(
                r#"{{"active":true,"access_token":"{}"}}"#,
                "s".repeat(900)
            ))
            .create_async()
            .await;
        server
            .mock("GET", PATH)
            .with_header("content-type", "application/json")
            .with_body(
                r#"[{"id":"U1234567","accountId":"U1234567","currency":"USD","type":"INDIVIDUAL"}]"#,
            )
            .create_async()
            .await;
        server
    })
}

fn session(rt: &Runtime, server: &ServerGuard) -> Session {
    let key = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    let signer = Signer::builder("bench-client", "main", key)
        .build()
        .unwrap();
    let tokens = FixedToken::new(
        Token::builder(SecretString::from("access"))
            .build()
            .unwrap(),
    );
    let config = SessionConfig::builder("benchuser")
        .ip("203.0.113.7")
        .build()
        .unwrap();
    let session = Session::builder(tokens, signer, config)
        .base_url(server.url())
        .build()
        .unwrap();
    rt.block_on(session.open()).unwrap();
    session
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = runtime();
    let server = server(&rt);
    let session = session(&rt, &server);
    let url = format!("{}{PATH}", server.url());
    let http = reqwest::Client::new();
    let through = reqwest_middleware::ClientBuilder::new(http.clone())
        .with(SessionAuth::new(session.clone(), &server.url()).unwrap())
        .build();
    let header = format!(
        "Bearer {}",
        rt.block_on(session.sso_token())
            .unwrap()
            .secret()
            .expose_secret()
    );

    let mut group = c.benchmark_group("session_call");
    group.bench_function("session_auth", |b| {
        b.to_async(&rt).iter(|| async {
            let response = through.get(&url).send().await.unwrap();
            black_box(response.bytes().await.unwrap());
        });
    });
    group.bench_function("reqwest_by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let response = http
                .get(&url)
                .header("authorization", &header)
                .send()
                .await
                .unwrap();
            black_box(response.bytes().await.unwrap());
        });
    });
    group.finish();

    // Interleaved, request by request: the same loopback drift on both.
    let rounds = 1000;
    let (mut ours, mut floor) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    rt.block_on(async {
        for _ in 0..rounds {
            let started = Instant::now();
            let response = through.get(&url).send().await.unwrap();
            black_box(response.bytes().await.unwrap());
            ours.push(started.elapsed());
            let started = Instant::now();
            let response = http
                .get(&url)
                .header("authorization", &header)
                .send()
                .await
                .unwrap();
            black_box(response.bytes().await.unwrap());
            floor.push(started.elapsed());
        }
    });
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (ours, floor) = (median(ours), median(floor));
    println!(
        "session_call, interleaved ({rounds} rounds, medians): SessionAuth {ours:?}, reqwest with \
         the header by hand {floor:?}; SessionAuth / by hand = {:.3}x",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    c.final_summary();
    rt.block_on(session.close()).ok();
    drop(server);
}
