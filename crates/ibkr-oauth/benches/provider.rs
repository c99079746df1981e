//! `TokenProvider` benchmarks, each beside its baseline in the same run:
//!
//! - `cached_read/{provider,tokio_rwlock}/N`: one `access_token()` on a warm provider, with N
//!   tasks reading at once on a 2-worker runtime, against a `tokio::sync::RwLock<Arc<Token>>`
//!   read + clone. Time per call = wall time / calls of all tasks together.
//! - `stampede/provider_10000_callers`: 10,000 tasks ask a cold provider at once (one RS256
//!   assertion, one POST to a local mockito server).
//! - `fetch/{token_client,reqwest_floor}`: one token request through `TokenClient` with a
//!   pre-signed assertion, against a plain reqwest POST of the same form to the same server.
//!
//! `fetch` then alternates the two, request by request, and prints the ratio of their medians:
//! the figure to quote, since the loopback's speed drifts between criterion's two groups.
//!
//! After the run it prints the medians and the ratios to the baselines (from criterion's
//! `estimates.json`). Short run: `cargo bench -p ibkr-oauth --bench provider -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ibkr_oauth::constants::TOKEN_PATH;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, Token, TokenClient, TokenRequest};
use mockito::{Server, ServerGuard};
use tokio::runtime::Runtime;

const SCOPE: &str = "sso-sessions.write";
/// About the size of IBKR's answer (its access token is a ~900-character JWT).
fn token_body() -> String {
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.{}",
        "e".repeat(600),
        "s".repeat(342)
    );
    format!(
        r#"{{"access_token":"{token}","token_type":"Bearer","scope":"{SCOPE}","expires_in":86399}}"#
    )
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A local token endpoint that grants every request.
fn server(rt: &Runtime) -> ServerGuard {
    rt.block_on(async {
        let mut server = Server::new_async().await;
        server
            .mock("POST", TOKEN_PATH)
            .with_header("content-type", "application/json")
            .with_body(token_body())
            .create_async()
            .await;
        server
    })
}

fn client(server: &ServerGuard) -> TokenClient {
    TokenClient::builder()
        .base_url(server.url())
        .build()
        .unwrap()
}

fn rs256_signer() -> Signer {
    let key = PrivateKey::generate(Algorithm::RS256).unwrap();
    Signer::builder("bench-client", "main", key)
        .build()
        .unwrap()
}

fn provider(client: &TokenClient, signer: &Signer) -> TokenProvider {
    TokenProvider::builder(client.clone(), signer.clone())
        .scope(SCOPE)
        .build()
        .unwrap()
}

/// One cached read, as a task does it in a loop (each task holds its own clone, so the loop
/// itself touches no shared counter).
trait Read: Clone + Send + Sync + 'static {
    fn read(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl Read for TokenProvider {
    async fn read(&self) {
        black_box(self.access_token().await.unwrap());
    }
}

/// The baseline: the token behind a `tokio::sync::RwLock`, read and cloned.
#[derive(Clone)]
struct Locked(Arc<tokio::sync::RwLock<Arc<Token>>>);

impl Read for Locked {
    async fn read(&self) {
        black_box(Arc::clone(&*self.0.read().await));
    }
}

/// Runs `calls` reads spread over `tasks` tasks; returns the wall time, scaled to `calls`.
async fn spread<R: Read>(tasks: u64, calls: u64, reader: R) -> Duration {
    let per_task = calls.div_ceil(tasks).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    reader.read().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start
        .elapsed()
        .mul_f64(calls as f64 / (per_task * tasks) as f64)
}

fn cached_read(c: &mut Criterion) {
    let rt = multi_thread();
    let server = server(&rt);
    let provider = provider(&client(&server), &rs256_signer());
    let token = rt.block_on(provider.access_token()).unwrap();
    let lock = Locked(Arc::new(tokio::sync::RwLock::new(token)));

    let mut group = c.benchmark_group("cached_read");
    for tasks in [1u64, 2, 8, 64] {
        group.bench_with_input(BenchmarkId::new("provider", tasks), &tasks, |b, &tasks| {
            b.to_async(&rt)
                .iter_custom(|iters| spread(tasks, iters, provider.clone()));
        });
        group.bench_with_input(
            BenchmarkId::new("tokio_rwlock", tasks),
            &tasks,
            |b, &tasks| {
                b.to_async(&rt)
                    .iter_custom(|iters| spread(tasks, iters, lock.clone()));
            },
        );
    }
    group.finish();
    drop(server);
}

fn stampede(c: &mut Criterion) {
    let rt = multi_thread();
    let server = server(&rt);
    let client = client(&server);
    let signer = rs256_signer();
    let mut group = c.benchmark_group("stampede");
    group.sample_size(10);
    group.bench_function("provider_10000_callers", |b| {
        b.to_async(&rt).iter(|| async {
            let provider = provider(&client, &signer);
            let callers: Vec<_> = (0..10_000)
                .map(|_| {
                    let provider = provider.clone();
                    tokio::spawn(async move {
                        black_box(provider.access_token().await.unwrap());
                    })
                })
                .collect();
            for caller in callers {
                caller.await.unwrap();
            }
        });
    });
    group.finish();
    drop(server);
}

fn fetch(c: &mut Criterion) {
    let rt = current_thread();
    let server = server(&rt);
    let client = client(&server);
    let assertion = rs256_signer().sign().unwrap();
    let request = TokenRequest::builder()
        .assertion(assertion.clone())
        .scope(SCOPE)
        .build()
        .unwrap();
    let url = format!("{}{TOKEN_PATH}", server.url());
    let http = reqwest::Client::builder().build().unwrap();
    let form = [
        ("grant_type", "client_credentials".to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", assertion.expose_secret().to_owned()),
        ("scope", SCOPE.to_owned()),
    ];

    let mut group = c.benchmark_group("fetch");
    group.bench_function("token_client", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(client.request_token(&request).await.unwrap());
        });
    });
    group.bench_function("reqwest_floor", |b| {
        b.to_async(&rt).iter(|| async {
            let response = http
                .post(&url)
                .header("accept", "application/json, application/problem+json")
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            black_box(response.bytes().await.unwrap());
        });
    });
    group.finish();

    // Criterion runs the two one after the other, and on a shared VM the loopback's speed drifts
    // between them (the floor alone moved from 185 to 450 us across runs). Alternating the two,
    // request by request, puts the same drift on both: the ratio of these medians is the figure.
    // A third column: reqwest with the settings TokenClient always has (timeouts, no
    // redirects, no proxy for loopback), which says how much of the gap is those settings.
    let same_settings = reqwest::Client::builder()
        .connect_timeout(ibkr_oauth::constants::DEFAULT_CONNECT_TIMEOUT)
        .timeout(ibkr_oauth::constants::DEFAULT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let rounds = 400;
    let mut ours = Vec::with_capacity(rounds);
    let mut floor = Vec::with_capacity(rounds);
    let mut same = Vec::with_capacity(rounds);
    rt.block_on(async {
        for _ in 0..rounds {
            let started = Instant::now();
            black_box(client.request_token(&request).await.unwrap());
            ours.push(started.elapsed());
            for (http, times) in [(&http, &mut floor), (&same_settings, &mut same)] {
                let started = Instant::now();
                let response = http
                    .post(&url)
                    .header("accept", "application/json, application/problem+json")
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                black_box(response.bytes().await.unwrap());
                times.push(started.elapsed());
            }
        }
    });
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64()
    };
    let (ours, floor, same) = (median(ours), median(floor), median(same));
    println!(
        "fetch, interleaved ({rounds} rounds, medians): TokenClient {}, plain reqwest {}, reqwest \
         with TokenClient's settings {}; TokenClient / reqwest = {:.2}x, / same settings = {:.2}x",
        human(ours * 1e9),
        human(floor * 1e9),
        human(same * 1e9),
        ours / floor,
        ours / same
    );
    drop(server);
}

/// Where criterion writes (its own default, for this workspace).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("criterion")
}

/// The median of one benchmark of this run, in nanoseconds.
fn median_ns(id: &str) -> Option<f64> {
    let path = criterion_dir().join(id).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.1} us", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}

fn summary() {
    println!("\nmedians and ratios (this run):");
    for tasks in [1, 2, 8, 64] {
        let ours = median_ns(&format!("cached_read/provider/{tasks}"));
        let base = median_ns(&format!("cached_read/tokio_rwlock/{tasks}"));
        if let (Some(ours), Some(base)) = (ours, base) {
            println!(
                "  cached_read {tasks:>2} tasks: provider {:>9}/call, tokio RwLock {:>9}/call, \
                 RwLock / provider = {:.1}x",
                human(ours),
                human(base),
                base / ours
            );
        }
    }
    let stampede = median_ns("stampede/provider_10000_callers");
    let client = median_ns("fetch/token_client");
    let floor = median_ns("fetch/reqwest_floor");
    if let (Some(client), Some(floor)) = (client, floor) {
        println!(
            "  fetch: TokenClient {}, plain reqwest {}, TokenClient / reqwest = {:.2}x",
            human(client),
            human(floor),
            client / floor
        );
    }
    if let Some(stampede) = stampede {
        let per_caller = stampede / 10_000.0;
        match client {
            Some(client) => println!(
                "  stampede: 10,000 cold callers {} ({} per caller; {:.1}x one TokenClient fetch)",
                human(stampede),
                human(per_caller),
                stampede / client
            ),
            None => println!(
                "  stampede: 10,000 cold callers {} ({} per caller)",
                human(stampede),
                human(per_caller)
            ),
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    cached_read(&mut c);
    stampede(&mut c);
    fetch(&mut c);
    c.final_summary();
    summary();
}
