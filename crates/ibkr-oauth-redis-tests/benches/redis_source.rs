//! Benches of the Redis-shared token source, each beside its baseline in the same run:
//!
//! - `hot_read`: a cached read through `RedisTokenSource` beside `TokenProvider`'s cached read
//!   (target: at most 1.2 x); the ratio of a plain loop of reads is printed too;
//! - `cold_fleet`: 32 `fleet-member` processes from spawn to all holding a token, with the
//!   sandbox's token-request count per run printed (must be 1);
//! - then, printed: Redis commands per process per refresh period (`INFO commandstats`) for
//!   a fleet of 4 keeping 2-second tokens fresh.
//!
//! `cargo bench -p ibkr-oauth-redis-tests` (needs `redis-server` on PATH).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth_redis_tests::{Fleet, Member, RedisServer};

const DAY: Duration = Duration::from_secs(86_399);

/// A runtime whose worker serves the sandbox while the bench thread waits for processes.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn hot_read(c: &mut Criterion) {
    let rt = runtime();
    let redis = RedisServer::start();
    let (fleet, provider, source) = rt.block_on(async {
        let fleet = Fleet::start(DAY).await;
        let provider = TokenProvider::with_source(fleet.fetch()).build().unwrap();
        let source = fleet.source(&redis.url()).build().unwrap();
        provider.access_token().await.unwrap();
        source.access_token().await.unwrap();
        (fleet, provider, source)
    });

    let mut group = c.benchmark_group("hot_read");
    group.bench_function("token_provider", |b| {
        b.to_async(&rt).iter(|| provider.access_token())
    });
    group.bench_function("redis_source", |b| {
        b.to_async(&rt).iter(|| source.access_token())
    });
    group.finish();

    // The same reads in a plain loop, alternating, median of several rounds.
    const READS: u32 = 200_000;
    let (mut p, mut s) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..READS {
                std::hint::black_box(provider.access_token().await.unwrap());
            }
            p.push(t.elapsed().as_nanos() as f64 / f64::from(READS));
            let t = Instant::now();
            for _ in 0..READS {
                std::hint::black_box(source.access_token().await.unwrap());
            }
            s.push(t.elapsed().as_nanos() as f64 / f64::from(READS));
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, s) = (median(&mut p), median(&mut s));
    println!(
        "hot_read loop: token_provider {p:.1} ns/read, redis_source {s:.1} ns/read, ratio {:.2} x (target <= 1.2)",
        s / p
    );
    assert_eq!(fleet.tokens_issued(), 2, "the hot reads fetched");
}

fn cold_fleet(c: &mut Criterion) {
    let rt = runtime();
    let redis = RedisServer::start();
    let fleet = rt.block_on(Fleet::start(DAY));
    let mut counts = Vec::new();
    let mut group = c.benchmark_group("cold_fleet");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("32_processes", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let _: () = redis.query(&redis::cmd("FLUSHALL"));
                let before = fleet.sandbox.request_count();
                let started = Instant::now();
                let mut members: Vec<Member> = (0..32)
                    .map(|_| fleet.member(&redis.url()).spawn())
                    .collect();
                for m in &mut members {
                    m.go();
                }
                for m in &members {
                    m.wait_for_line("token");
                }
                total += started.elapsed();
                for m in &mut members {
                    assert!(m.wait());
                }
                counts.push(fleet.sandbox.request_count() - before);
            }
            total
        })
    });
    group.finish();
    println!("cold_fleet: token requests per run of 32 processes: {counts:?} (must all be 1)");
    assert!(counts.iter().all(|&n| n == 1));
}

/// Not a timing: how many Redis commands a process sends per refresh period.
fn commands_per_refresh_period() {
    let rt = runtime();
    let redis = RedisServer::start();
    let fleet = rt.block_on(Fleet::start(Duration::from_secs(2)));
    const MEMBERS: u64 = 4;
    let mut members: Vec<Member> = (0..MEMBERS)
        .map(|_| {
            fleet
                .member(&redis.url())
                .env("FLEET_MODE", "watch")
                .env("FLEET_WATCH_MS", "12000")
                .env("FLEET_LEASE_MS", "1000")
                .spawn()
        })
        .collect();
    for m in &members {
        m.wait_for_line("ready");
    }
    redis.reset_stats();
    for m in &mut members {
        m.go();
    }
    for m in &mut members {
        assert!(m.wait(), "{}", m.stderr());
    }
    let calls = redis.command_calls();
    let total: u64 = calls.values().sum();
    let periods = fleet.tokens_issued();
    let reads: usize = members.iter().map(|m| m.lines().len()).sum();
    println!(
        "redis commands: {total} from {MEMBERS} processes over {periods} refresh periods (2 s tokens, \
         12 s): {:.1} per process per period; by command {calls:?}; token requests {periods}; \
         token changes printed {reads}",
        total as f64 / (MEMBERS * periods.max(1)) as f64
    );
}

criterion_group!(benches, hot_read, cold_fleet);

fn main() {
    benches();
    commands_per_refresh_period();
    Criterion::default().configure_from_args().final_summary();
}
