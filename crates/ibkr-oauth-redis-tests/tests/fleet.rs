//! Fleets of separate OS processes (`fleet-member`) sharing one token through a real Redis,
//! against the sandbox: a cold start of 32, a lease holder killed while it holds the lease, a
//! member with the wrong encryption key, and many refresh periods in accelerated time.
//! Counts and order only; every wait is bounded.

use std::time::Duration;

use ibkr_oauth_redis_tests::{Fleet, Member, RedisServer};
use ibkr_oauth_sandbox::Fault;

const DAY: Duration = Duration::from_secs(86_399);

/// Starts `members`, waits until each is ready, then lets them all go at once.
fn start_together(members: &mut [Member]) {
    for member in members.iter() {
        member.wait_for_line("ready");
    }
    for member in members.iter_mut() {
        member.go();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_processes_started_at_once_send_one_token_request() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let mut members: Vec<Member> = (0..32)
        .map(|_| fleet.member(&redis.url()).spawn())
        .collect();
    start_together(&mut members);
    let mut tokens = Vec::new();
    for member in &mut members {
        assert!(member.wait(), "a member failed: {}", member.stderr());
        tokens.extend(member.tokens());
    }
    assert_eq!(tokens.len(), 32);
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(fleet.sandbox.request_count(), 1);
    assert_eq!(fleet.tokens_issued(), 1);
    for member in &members {
        assert!(
            !member.stderr().contains("WARN"),
            "a member warned: {}",
            member.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_while_it_holds_the_lease_is_taken_over() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    // The first request never gets an answer: its sender holds the lease until it dies.
    fleet.sandbox.inject_fault(Fault::StallForever, 1);
    let member = |fleet: &Fleet| {
        fleet
            .member(&redis.url())
            .env("FLEET_LEASE_MS", "1000")
            .spawn()
    };
    let mut holder = member(&fleet);
    start_together(std::slice::from_mut(&mut holder));
    fleet.sandbox.wait_for_requests(1).await;
    let lease: Option<String> = redis.query(redis::cmd("GET").arg("ibkr-oauth:fleet-client:lease"));
    assert!(lease.is_some(), "the holder holds no lease");

    // Two more processes wait for the holder, which then dies.
    let mut waiters = vec![member(&fleet), member(&fleet)];
    start_together(&mut waiters);
    holder.kill();

    // One of them takes the lease over when it expires; both get that one token.
    let mut tokens = Vec::new();
    for waiter in &mut waiters {
        assert!(waiter.wait(), "a waiter failed: {}", waiter.stderr());
        tokens.extend(waiter.tokens());
    }
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
    assert_eq!(fleet.sandbox.request_count(), 2);
    assert_eq!(fleet.tokens_issued(), 1);
    assert!(holder.tokens().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_the_wrong_key_fetches_alone_warns_and_overwrites_nothing() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let mut good = fleet.member(&redis.url()).spawn();
    start_together(std::slice::from_mut(&mut good));
    assert!(good.wait());
    let entry: Vec<u8> = redis.query(redis::cmd("GET").arg("ibkr-oauth:fleet-client:token"));

    let wrong_key = ibkr_oauth_redis::EncryptionKey::generate_base64().unwrap();
    let mut wrong = fleet
        .member(&redis.url())
        .env("FLEET_ENC_KEY", wrong_key.as_str())
        .spawn();
    start_together(std::slice::from_mut(&mut wrong));
    assert!(
        wrong.wait(),
        "the wrong-key member failed: {}",
        wrong.stderr()
    );
    assert!(
        wrong.stderr().contains("WARN") && wrong.stderr().contains("another encryption key"),
        "{}",
        wrong.stderr()
    );
    assert_ne!(wrong.tokens(), good.tokens());
    let after: Vec<u8> = redis.query(redis::cmd("GET").arg("ibkr-oauth:fleet-client:token"));
    assert_eq!(after, entry, "the good entry was overwritten");

    let mut again = fleet.member(&redis.url()).spawn();
    start_together(std::slice::from_mut(&mut again));
    assert!(again.wait());
    assert_eq!(again.tokens(), good.tokens());
    assert_eq!(fleet.tokens_issued(), 2);
}

/// Tokens of 3 s refreshed from 20% before expiry: a refresh period of about 2.4 s, and every
/// member keeping its token fresh with a refresher for a dozen periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_refresh_periods_in_accelerated_time_one_request_per_period() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3)).await;
    let mut members: Vec<Member> = (0..4)
        .map(|_| {
            fleet
                .member(&redis.url())
                .env("FLEET_MODE", "watch")
                .env("FLEET_WATCH_MS", "30000")
                .env("FLEET_LEASE_MS", "1000")
                .spawn()
        })
        .collect();
    start_together(&mut members);
    for member in &mut members {
        assert!(member.wait(), "a member failed: {}", member.stderr());
    }

    // Every token the sandbox issued went to the whole fleet: each member saw the same
    // sequence (the last token may have come just as some members stopped), and there are as
    // many requests as tokens seen.
    let mut all: Vec<String> = Vec::new();
    for member in &members {
        for token in member.tokens() {
            if !all.contains(&token) {
                all.push(token);
            }
        }
    }
    let issued = fleet.tokens_issued();
    eprintln!(
        "accelerated time: {issued} token requests for {} members; each saw {:?} tokens",
        members.len(),
        members.iter().map(|m| m.tokens().len()).collect::<Vec<_>>()
    );
    assert_eq!(fleet.sandbox.request_count(), issued);
    assert_eq!(all.len() as u64, issued, "a token no member used");
    assert!(issued >= 4, "only {issued} refreshes in the run");
    for member in &members {
        let seen = member.tokens();
        assert!(
            seen == all || seen[..] == all[..all.len() - 1],
            "a member missed or reordered a fleet token: {seen:?} vs {all:?}"
        );
        assert!(
            !member.stderr().contains("ERROR"),
            "a member had no token at some point: {}",
            member.stderr()
        );
    }
}
