//! The sandbox's own pacing over HTTP: per username, `429` with `Retry-After` past the limit,
//! then the penalty window; off unless configured.

mod common;

use std::time::Duration;

use common::*;
use ibkr_oauth_sandbox::{AUTH_STATUS_PATH, RunningSandbox, SandboxPacing};
use serde_json::{Value, json};

async fn open_session(sandbox: &RunningSandbox, user: &str) -> String {
    let assertion = Signer::rs256().sign(&claims(now()));
    let response = send(
        &http(),
        sandbox,
        &Body::Form(form(&assertion, Some("sso-sessions.write"))),
    )
    .await;
    let token: Value = response.json().await.unwrap();
    let now = now();
    let body = json!({"ip": "203.0.113.7", "credential": user, "iss": CLIENT, "iat": now, "exp": now + 86_400});
    let response = http()
        .post(sandbox.sso_sessions_url())
        .bearer_auth(token["access_token"].as_str().unwrap())
        .header("content-type", "application/jwt")
        .body(Signer::rs256().sign(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn status(sandbox: &RunningSandbox, sso: &str) -> reqwest::Response {
    http()
        .post(sandbox.url(AUTH_STATUS_PATH))
        .bearer_auth(sso)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn past_the_limit_a_429_then_the_penalty_window() {
    let pacing = SandboxPacing::ibkr()
        .per_second(5)
        .penalty(Duration::from_secs(60));
    let sandbox = builder().pacing(pacing).start().await.unwrap();
    let (alice, bob) = (
        open_session(&sandbox, "alice").await,
        open_session(&sandbox, "bob").await,
    );
    for _ in 0..5 {
        assert_eq!(status(&sandbox, &alice).await.status(), 200);
    }
    let refused = status(&sandbox, &alice).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "60");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "Too Many Requests", "statusCode": 429})
    );
    // The penalty window: refused still, whatever the rate.
    assert_eq!(status(&sandbox, &alice).await.status(), 429);
    // Another username has its own budget.
    assert_eq!(status(&sandbox, &bob).await.status(), 200);
    let counts = sandbox.pacing_counts("alice").unwrap();
    assert_eq!(
        (counts.admitted, counts.refused, counts.most_in_one_second),
        (5, 2, 5)
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn off_by_default() {
    let sandbox = builder().start().await.unwrap();
    let sso = open_session(&sandbox, "alice").await;
    for _ in 0..60 {
        assert_eq!(status(&sandbox, &sso).await.status(), 200);
    }
    assert_eq!(sandbox.pacing_counts("alice"), None);
    sandbox.shutdown().await;
}
