//! Injected faults and the adjustable clock.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use ibkr_oauth_sandbox::{Fault, Outcome};
use serde_json::Value;

fn date_secs(response: &reqwest::Response) -> i64 {
    let date = response.headers()["date"].to_str().unwrap();
    httpdate::parse_http_date(date)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn server_errors_for_the_next_n_requests() {
    let sandbox = sandbox().await;
    let http = http();
    sandbox.inject_fault(Fault::ServerError, 2);
    assert_eq!(sandbox.pending_faults(), 2);
    let mut sent_jtis = Vec::new();
    let mut signed = || {
        let claims = claims(now());
        sent_jtis.push(claims["jti"].clone());
        Body::form(&Signer::rs256().sign(&claims))
    };
    for _ in 0..2 {
        let response = send(&http, &sandbox, &signed()).await;
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/simple");
        assert_eq!(problem["title"], "Internal Server Error");
        assert_eq!(problem["status"], 500);
        assert_eq!(
            problem["detail"],
            "injected fault: the sandbox was told to fail this request"
        );
    }
    let response = send(&http, &sandbox, &signed()).await;
    assert_eq!(response.status(), 200);
    // Faulted requests are logged with their assertion: a test can check every retry signed a
    // new one. The log holds each request's own claims, decoded by the sandbox.
    let log = sandbox.requests();
    let faults: Vec<_> = log.iter().map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [Some(Fault::ServerError), Some(Fault::ServerError), None]
    );
    let logged_jtis: Vec<_> = log
        .iter()
        .map(|r| r.assertion_claims.as_ref().map(|c| c["jti"].clone()))
        .collect();
    let sent_jtis: Vec<_> = sent_jtis.into_iter().map(Some).collect();
    assert_eq!(logged_jtis, sent_jtis);
    assert_eq!(sandbox.pending_faults(), 0);
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let sandbox = sandbox().await;
    sandbox.inject_fault(
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        },
        1,
    );
    let response = send(&http(), &sandbox, &Body::form("x")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(
        problem["detail"],
        "injected fault: too many requests; retry after 2 seconds"
    );
}

#[tokio::test]
async fn faults_queue_in_order_and_can_be_cleared() {
    let sandbox = sandbox().await;
    let http = http();
    sandbox.inject_fault(
        Fault::TooManyRequests {
            retry_after: Duration::from_secs(1),
        },
        1,
    );
    sandbox.inject_fault(Fault::ServerError, 1);
    assert_eq!(send(&http, &sandbox, &Body::form("x")).await.status(), 429);
    assert_eq!(send(&http, &sandbox, &Body::form("x")).await.status(), 500);
    sandbox.inject_fault(Fault::ServerError, 5);
    sandbox.clear_faults();
    assert_eq!(sandbox.pending_faults(), 0);
    assert_eq!(send(&http, &sandbox, &Body::form("x")).await.status(), 400);
}

/// Sends a good token request from a task of its own, so that a test can watch it stall.
fn spawn_token_request(
    http: &reqwest::Client,
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = http
        .post(sandbox.token_url())
        .form(&form(&Signer::eddsa().sign(&claims(now())), None));
    tokio::spawn(request.send())
}

/// Asserts that `request` is not answered before `stall` is over, and is right after. Under
/// paused time (the sandbox runs on the test's runtime), so the stall is virtual.
async fn assert_stalled_for(
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
    stall: Duration,
    mut request: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) -> reqwest::Response {
    let almost = stall - Duration::from_millis(1);
    let early = tokio::time::timeout(almost, &mut request).await;
    assert!(
        early.is_err(),
        "answered before the stall was over: {early:?}"
    );
    let stalled = sandbox.last_request().unwrap();
    assert_eq!(stalled.fault, Some(Fault::Stall(stall)));
    assert_eq!(stalled.outcome, Outcome::Pending);
    tokio::time::timeout(Duration::from_millis(2), request)
        .await
        .expect("answered once the stall is over")
        .unwrap()
        .expect("the sandbox answers")
}

#[tokio::test(start_paused = true)]
async fn a_stall_delays_then_answers() {
    let sandbox = sandbox().await;
    let stall = Duration::from_millis(20);
    sandbox.inject_fault(Fault::Stall(stall), 1);
    let request = spawn_token_request(&http(), &sandbox);
    let response = assert_stalled_for(&sandbox, stall, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(sandbox.last_request().unwrap().status(), Some(200));
}

#[tokio::test]
async fn a_request_stalled_forever_is_closed_at_shutdown() {
    let sandbox = sandbox().await;
    sandbox.inject_fault(Fault::StallForever, 1);
    let url = sandbox.token_url();
    let request = tokio::spawn(async move { http().post(url).form(&form("x", None)).send().await });
    // Known to have arrived without sleeping: the count is awaited.
    sandbox.wait_for_requests(1).await;
    assert_eq!(sandbox.last_request().unwrap().outcome, Outcome::Pending);
    assert!(!request.is_finished());
    sandbox.shutdown().await;
    let result = request.await.unwrap();
    assert!(
        result.is_err(),
        "a stalled request gets no answer: {result:?}"
    );
}

#[tokio::test]
async fn close_connection_answers_nothing() {
    let sandbox = sandbox().await;
    let http = http();
    sandbox.inject_fault(Fault::CloseConnection, 1);
    let result = send_result(&http, &sandbox).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        sandbox.last_request().unwrap().outcome,
        Outcome::ConnectionClosed
    );
    // The next request is served.
    assert_eq!(send(&http, &sandbox, &Body::form("x")).await.status(), 400);
}

async fn send_result(
    http: &reqwest::Client,
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
) -> reqwest::Result<reqwest::Response> {
    http.post(sandbox.token_url())
        .form(&form("x", None))
        .send()
        .await
}

#[tokio::test]
async fn the_clock_offset_drives_date_and_time_checks() {
    let sandbox = sandbox().await;
    let http = http();
    sandbox.set_clock_offset(-3600);
    assert_eq!(sandbox.clock_offset(), -3600);

    // An assertion made by the client's (real) clock is an hour in the server's future.
    let real_now = now();
    let response = send(
        &http,
        &sandbox,
        &Body::form(&Signer::rs256().sign(&claims(real_now))),
    )
    .await;
    let server_date = date_secs(&response);
    assert!(
        (real_now - 3600 - server_date).abs() <= 5,
        "Date {server_date} vs now {real_now}"
    );
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("client_assertion: exp ")
            && detail.contains("is more than 300 seconds after"),
        "{detail}"
    );

    // Made by the server's clock, read from Date, as a skew-correcting client does, it passes.
    let skewed = Signer::rs256().sign(&claims(server_date));
    let response = send(&http, &sandbox, &Body::form(&skewed)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let issued = sandbox
        .verify_access_token(body["access_token"].as_str().unwrap())
        .unwrap();
    assert!((issued.iat - server_date).abs() <= 5);

    // An hour ahead, the client's assertion has expired.
    sandbox.set_clock_offset(3600);
    let response = send(
        &http,
        &sandbox,
        &Body::form(&Signer::rs256().sign(&claims(now()))),
    )
    .await;
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("is in the past"),
        "{problem}"
    );
    let received = sandbox
        .last_request()
        .unwrap()
        .received_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((received - now() - 3600).abs() <= 5);
}

#[tokio::test]
async fn the_clock_offset_can_start_set() {
    let sandbox = builder().clock_offset(120).start().await.unwrap();
    let response = send(&http(), &sandbox, &Body::form("x")).await;
    assert!((date_secs(&response) - now() - 120).abs() <= 5);
    let sandbox_now = sandbox.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((sandbox_now - now() - 120).abs() <= 5);
}

/// Under tokio's paused time, as the SDK's provider tests run: a stall is skipped, not waited,
/// and a kept-alive connection survives an hour of virtual time.
#[tokio::test(start_paused = true)]
async fn paused_time_skips_stalls_and_keeps_connections() {
    let sandbox = sandbox().await;
    let http = http();
    let stall = Duration::from_secs(3600);
    sandbox.inject_fault(Fault::Stall(stall), 1);
    let response = assert_stalled_for(&sandbox, stall, spawn_token_request(&http, &sandbox)).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let response = send(
        &http,
        &sandbox,
        &Body::form(&Signer::eddsa().sign(&claims(now()))),
    )
    .await;
    assert_eq!(response.status(), 200);
}
