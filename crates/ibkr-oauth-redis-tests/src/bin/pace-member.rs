//! One member of a pacing fleet: a `RedisPacer` from `PACE_*` variables; prints `ready`, waits
//! for a line on stdin (so that a test starts all at once), then offers `PACE_RATE` requests
//! per second (one task each, taking a turn with `PACE_MAX_WAIT_MS` of patience) for
//! `PACE_MS`, and prints `admitted <Redis time in µs>` for each request let through,
//! `refused <count> <kinds>` and `done`.

use std::io::BufRead;
use std::time::{Duration, UNIX_EPOCH};

use ibkr_oauth::pacing::{Limit, PacingError, PacingTable};
use ibkr_oauth_redis::RedisPacer;

fn var(name: &str, default: Option<&str>) -> String {
    std::env::var(name)
        .ok()
        .or_else(|| default.map(str::to_owned))
        .unwrap_or_else(|| {
            eprintln!("pace-member: {name} is not set");
            std::process::exit(2)
        })
}

fn number(name: &str, default: u64) -> u64 {
    var(name, Some(&default.to_string()))
        .parse()
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let per_second = u32::try_from(number("PACE_LIMIT", 45)).unwrap_or(45);
    let burst = u32::try_from(number("PACE_BURST", 5)).unwrap_or(5);
    let table = PacingTable::ibkr()
        .global(Limit::per_second(per_second).burst(burst))
        .max_wait(Duration::from_millis(number("PACE_MAX_WAIT_MS", 200)));
    let pacer = RedisPacer::builder(
        var("PACE_REDIS_URL", None),
        var("PACE_USER", Some("fleet-user")),
        table,
    )
    .build()
    .unwrap_or_else(|e| {
        eprintln!("pace-member: {e}");
        std::process::exit(2)
    });
    // Connect before the start, so the first turn is not a connection's.
    let _ = pacer.table();
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);

    let rate = number("PACE_RATE", 17).max(1);
    let run = Duration::from_millis(number("PACE_MS", 2_000));
    let path = var("PACE_PATH", Some("/v1/api/iserver/accounts"));
    let mut ticks =
        tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap_or(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < run {
        ticks.tick().await;
        let pacer = pacer.clone();
        let path = path.clone();
        tasks.spawn(async move { pacer.admit(&path).await });
    }
    let (mut over, mut paused, mut unavailable) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.expect("no panic") {
            Ok(at) => {
                let micros = at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros();
                println!("admitted {micros}");
            }
            Err(PacingError::OverLimit { .. }) => over += 1,
            Err(PacingError::Paused { .. }) => paused += 1,
            Err(_) => unavailable += 1,
        }
    }
    println!(
        "refused {} over={over} paused={paused} unavailable={unavailable}",
        over + paused + unavailable
    );
    println!("done");
}
