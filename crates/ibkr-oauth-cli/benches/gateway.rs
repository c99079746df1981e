//! What `serve --gateway` adds to one call: `GET /v1/api/iserver/accounts` through the
//! gateway's CP-compatible listener (plain http, loopback; the gateway forwards it with the
//! held session's bearer, through its slot for calls in flight and a governor whose limits are
//! far above the rate reached here) against the same call sent to the sandbox directly with
//! the bearer set by hand, on the same host, with one reqwest client each.
//!
//! - `gateway_call/{through_gateway,sandbox_direct}`: criterion's two groups.
//! - Then the two alternate, request by request, and the medians (p50) and their difference
//!   are printed: the figure to quote (goal: at most 150 µs added at p50), since the
//!   loopback's speed drifts between criterion's groups.
//!
//! Short run: `cargo bench -p ibkr-oauth-cli --bench gateway -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ibkr_oauth::pacing::{Governor, Limit, Pacer, PacingTable};
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::session::{SSO_SESSIONS_SCOPE, Session, SessionConfig};
use ibkr_oauth::{Algorithm, ExposeSecret, PrivateKey, Signer, TokenClient, TokenSource};
use ibkr_oauth_cli::gateway::{Forwarding, Gateway};
use ibkr_oauth_sandbox::{RegisteredClient, RunningSandbox, Sandbox};
use tokio::runtime::Runtime;

const PATH: &str = "/v1/api/iserver/accounts";

struct Setup {
    sandbox: RunningSandbox,
    gateway_base: String,
    header: String,
    session: Session,
}

async fn setup() -> Setup {
    let key = PrivateKey::generate(Algorithm::ES256).unwrap();
    let registered = RegisteredClient::new("bench-client")
        .key("main", key.public_key_pem())
        .allowed_scopes([SSO_SESSIONS_SCOPE]);
    let sandbox = Sandbox::builder().client(registered).start().await.unwrap();
    let base = sandbox.base_url();
    let signer = Signer::builder("bench-client", "main", key)
        .build()
        .unwrap();
    let client = TokenClient::builder().base_url(&base).build().unwrap();
    let provider = TokenProvider::builder(client, signer.clone())
        .scope(SSO_SESSIONS_SCOPE)
        .build()
        .unwrap();
    let tokens: Arc<dyn TokenSource> = Arc::new(provider);
    let config = SessionConfig::builder("benchuser")
        .ip("127.0.0.1")
        .build()
        .unwrap();
    let session = Session::builder(Arc::clone(&tokens), signer, config)
        .base_url(&base)
        .build()
        .unwrap();
    session.open().await.unwrap();
    // Pacing on, with limits this loop never reaches: its cost is measured, not its waits.
    let table = PacingTable::ibkr().global(Limit::per_second(1_000_000).burst(1000));
    let pacer: Arc<dyn Pacer> = Arc::new(Governor::new(table).unwrap());
    let gateway = Gateway::new(
        session.clone(),
        tokens,
        pacer,
        &base,
        Forwarding::default(),
        None,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let gateway_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway.serve_cp_compatible(listener, None, std::future::pending()));
    let header = format!(
        "Bearer {}",
        session.sso_token().await.unwrap().secret().expose_secret()
    );
    Setup {
        sandbox,
        gateway_base,
        header,
        session,
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // The machine's two cores: the sandbox, the gateway and the client share them.
    let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    let direct_url = format!("{}{PATH}", setup.sandbox.base_url());
    let gateway_url = format!("{}{PATH}", setup.gateway_base);
    let http = reqwest::Client::new();
    let through = || async {
        let response = http.get(&gateway_url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        black_box(response.bytes().await.unwrap());
    };
    let direct = || async {
        let response = http
            .get(&direct_url)
            .header("authorization", &setup.header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        black_box(response.bytes().await.unwrap());
    };

    let mut group = c.benchmark_group("gateway_call");
    group.bench_function("through_gateway", |b| b.to_async(&rt).iter(through));
    group.bench_function("sandbox_direct", |b| b.to_async(&rt).iter(direct));
    group.finish();

    // Interleaved, request by request: the same loopback drift on both.
    let rounds = 2000;
    let (mut ours, mut floor) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    rt.block_on(async {
        for _ in 0..rounds {
            let started = Instant::now();
            through().await;
            ours.push(started.elapsed());
            let started = Instant::now();
            direct().await;
            floor.push(started.elapsed());
        }
    });
    let quantile = |times: &mut Vec<Duration>, q: f64| {
        times.sort();
        times[((times.len() - 1) as f64 * q) as usize]
    };
    let (p50, p50_floor) = (quantile(&mut ours, 0.5), quantile(&mut floor, 0.5));
    let (p90, p90_floor) = (quantile(&mut ours, 0.9), quantile(&mut floor, 0.9));
    println!(
        "gateway_call, interleaved ({rounds} rounds): p50 through the gateway {p50:?}, sandbox \
         direct {p50_floor:?}, added {:?}; p90 {p90:?} vs {p90_floor:?}, added {:?}",
        p50.saturating_sub(p50_floor),
        p90.saturating_sub(p90_floor)
    );
    c.final_summary();
    rt.block_on(setup.session.close()).ok();
    drop(setup.sandbox);
}
