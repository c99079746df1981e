//! The metrics (feature `metrics`), recorded through a local recorder: token requests by mode
//! and outcome, lease waits, fallbacks by reason, refreshes ahead, seconds until expiry. Its
//! own test binary, one test: the recorder is installed for the thread that runs it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibkr_oauth_redis::EncryptionKey;
use ibkr_oauth_redis_tests::{CLIENT, Fleet, RedisServer};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

#[derive(Default)]
struct Values {
    counters: Mutex<BTreeMap<String, Arc<Cell>>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.0.store(value as u64, Ordering::Relaxed);
    }
}

impl Values {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .filter(|l| l.key() != "cache")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.counters.lock().unwrap().entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

struct Local(Arc<Values>);

impl Recorder for Local {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn metrics_count_requests_waits_fallbacks_and_refreshes() {
    let values = Arc::new(Values::default());
    let recorder = Local(Arc::clone(&values));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let redis = RedisServer::start();
            // 3-second tokens: the refresh margin (20%) comes after 2.4 s.
            let fleet = Fleet::start(Duration::from_secs(3)).await;
            let a = fleet.source(&redis.url()).build().unwrap();
            let b = fleet.source(&redis.url()).build().unwrap();
            // The holder's request is slow, so that the other one surely waits for it.
            fleet.sandbox.inject_fault(
                ibkr_oauth_sandbox::Fault::Stall(Duration::from_millis(300)),
                1,
            );
            let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
            assert_eq!(
                ta.unwrap().access_token().expose_secret_str(),
                tb.unwrap().access_token().expose_secret_str()
            );
            assert_eq!(
                values.get("ibkr_oauth_redis_token_requests_total{mode=shared,outcome=ok}"),
                1
            );
            assert_eq!(values.get("ibkr_oauth_redis_lease_waits_total{}"), 1);
            let left = values.get("ibkr_oauth_redis_token_seconds_until_expiry{}");
            assert!((1..=3).contains(&left), "{left}");

            // The refresh ahead, once for both.
            let first = a.access_token().await.unwrap();
            let mut refreshed = false;
            for _ in 0..400 {
                let now = a.access_token().await.unwrap();
                b.access_token().await.unwrap();
                if now.access_token().expose_secret_str()
                    != first.access_token().expose_secret_str()
                {
                    refreshed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(refreshed, "no refresh ahead");
            assert_eq!(values.get("ibkr_oauth_redis_refreshes_ahead_total{}"), 1);

            // Another key: a fallback of its own reason.
            let wrong = ibkr_oauth_redis::RedisTokenSource::builder(
                redis.url(),
                CLIENT,
                EncryptionKey::from_bytes(&[3; 32]).unwrap(),
                fleet.fetch(),
            )
            .build()
            .unwrap();
            wrong.access_token().await.unwrap();
            assert_eq!(
                values.get("ibkr_oauth_redis_fallbacks_total{reason=other_key}"),
                1
            );
            assert_eq!(
                values.get("ibkr_oauth_redis_token_requests_total{mode=alone,outcome=ok}"),
                1
            );

            // No Redis at all (nothing listens there): a fallback, and still a token.
            let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("redis://{}", nowhere.local_addr().unwrap());
            drop(nowhere);
            let lonely = fleet.source(&url).build().unwrap();
            lonely.access_token().await.unwrap();
            assert_eq!(
                values.get("ibkr_oauth_redis_fallbacks_total{reason=redis_unavailable}"),
                1
            );
        });
    });
}

trait ExposeStr {
    fn expose_secret_str(&self) -> String;
}

impl ExposeStr for ibkr_oauth::SecretString {
    fn expose_secret_str(&self) -> String {
        use ibkr_oauth::ExposeSecret;
        self.expose_secret().to_owned()
    }
}
