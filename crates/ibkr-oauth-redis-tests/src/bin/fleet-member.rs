//! One member of a test fleet: builds a `RedisTokenSource` from `FLEET_*` variables, prints
//! `ready`, waits for a line on stdin (so that a test starts many at once), then:
//!
//! - `FLEET_MODE=once` (default): gets one token, prints `token <id> <seconds left>`, exits;
//! - `FLEET_MODE=watch`: keeps the token fresh (a refresher) for `FLEET_WATCH_MS`, reading it
//!   every `FLEET_READ_MS` (default 20) and printing `token <id> <seconds left>` whenever it
//!   changes, then `done`.
//!
//! `<id>` is a hash prefix of the token, never the token. Warnings (tracing events at `warn`
//! and above) go to stderr as `WARN field=value ...` lines.

use std::fmt::Write as _;
use std::io::BufRead;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use ibkr_oauth::{ExposeSecret, PrivateKey};
use ibkr_oauth_redis::{EncryptionKey, RedisTokenSource};
use ibkr_oauth_redis_tests::{client_fetch, token_id};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("{name} is not set")))
}

fn millis(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn fail(message: &str) -> ! {
    eprintln!("fleet-member: {message}");
    std::process::exit(2)
}

/// Prints warnings and errors to stderr, one line each.
struct Stderr(Mutex<()>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Stderr {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let _guard = self.0.lock();
        eprintln!("{} {}", event.metadata().level(), fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn print_token(token: &ibkr_oauth::Token) {
    let left = token
        .expires_at()
        .duration_since(SystemTime::now())
        .map_or(0, |d| d.as_secs());
    println!(
        "token {} {left}",
        token_id(token.access_token().expose_secret())
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = tracing::subscriber::set_global_default(Stderr(Mutex::new(())));
    let key = PrivateKey::from_pem_file(var("FLEET_KEY_FILE"))
        .unwrap_or_else(|e| fail(&format!("the key file: {e}")));
    let encryption_key =
        EncryptionKey::from_base64(&var("FLEET_ENC_KEY")).unwrap_or_else(|e| fail(&e.to_string()));
    let mut builder = RedisTokenSource::builder(
        var("FLEET_REDIS_URL"),
        ibkr_oauth_redis_tests::CLIENT,
        encryption_key,
        client_fetch(&var("FLEET_BASE_URL"), key),
    )
    .command_timeout(millis("FLEET_TIMEOUT_MS", 500))
    .lease_ttl(millis("FLEET_LEASE_MS", 5_000));
    if let Some(fraction) = std::env::var("FLEET_REFRESH_FRACTION")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder = builder.refresh_fraction(fraction);
    }
    let source = builder
        .build()
        .unwrap_or_else(|e| fail(&format!("build: {e}")));

    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);

    match std::env::var("FLEET_MODE").as_deref().unwrap_or("once") {
        "once" => match source.access_token().await {
            Ok(token) => print_token(&token),
            Err(e) => fail(&format!("no token: {e}")),
        },
        "watch" => {
            let _refresher = source
                .spawn_refresher()
                .unwrap_or_else(|e| fail(&e.to_string()));
            let until = Instant::now() + millis("FLEET_WATCH_MS", 5_000);
            let every = millis("FLEET_READ_MS", 20);
            let mut last = String::new();
            while Instant::now() < until {
                match source.access_token().await {
                    Ok(token) => {
                        let id = token_id(token.access_token().expose_secret());
                        if id != last {
                            print_token(&token);
                            last = id;
                        }
                    }
                    Err(e) => eprintln!("ERROR no token: {e}"),
                }
                tokio::time::sleep(every).await;
            }
            println!("done");
        }
        other => fail(&format!("unknown FLEET_MODE {other}")),
    }
}
