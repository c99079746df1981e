//! The echo endpoints as a protected resource: the bearer token (401), its scope (403), the
//! Signed JWT body, revocation, request ids, and the request log of API calls.

mod common;

use common::*;
use ibkr_oauth_sandbox::{Endpoint, Outcome, RunningSandbox};
use serde_json::{Value, json};

/// A token for `client` (signed by `signer`) with `scope`.
async fn access_token(
    sandbox: &RunningSandbox,
    signer: &Signer,
    client: &str,
    scope: &str,
) -> String {
    let assertion = signer.sign(&claims_for(client, now()));
    let response = send(&http(), sandbox, &Body::Form(form(&assertion, Some(scope)))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn echo_token(sandbox: &RunningSandbox) -> String {
    access_token(sandbox, &Signer::rs256(), CLIENT, "echo.read echo.write").await
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn get_https(
    sandbox: &RunningSandbox,
    token: Option<&str>,
    query: &str,
) -> reqwest::Response {
    let mut request = http().get(format!("{}{query}", sandbox.echo_https_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn post_signed(
    sandbox: &RunningSandbox,
    token: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    http()
        .post(sandbox.echo_signed_jwt_url())
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The `detail` of a problem response, after checking its status and content type.
async fn problem(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn echo_https_echoes_a_get_with_a_good_token() {
    let sandbox = sandbox().await;
    let token = echo_token(&sandbox).await;
    let response = get_https(&sandbox, Some(&token), "?a=1&b=x+y&a=2").await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id").expect("a request id");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"requestMethod": "GET", "securityPolicy": "HTTPS",
               "queryParameters": {"a": ["1", "2"], "b": "x y"}})
    );
    let entry = sandbox.last_request().unwrap();
    assert_eq!(entry.endpoint, Endpoint::EchoHttps);
    assert_eq!(entry.request_id, request_id);
    assert_eq!(entry.client_id.as_deref(), Some(CLIENT));
    assert_eq!(entry.status(), Some(200));
    assert!(
        !format!("{entry:?}").contains(&token),
        "no bearer token in the log"
    );
}

#[tokio::test]
async fn the_log_counts_token_requests_and_api_calls_apart() {
    let sandbox = sandbox().await;
    let first = echo_token(&sandbox).await;
    let second = echo_token(&sandbox).await;
    assert_eq!(get_https(&sandbox, Some(&first), "").await.status(), 200);
    assert_eq!(get_https(&sandbox, Some(&second), "").await.status(), 200);
    let requests = sandbox.requests();
    let count = |api: bool| {
        requests
            .iter()
            .filter(|r| r.endpoint.is_api_call() == api)
            .count()
    };
    assert_eq!((count(false), count(true)), (2, 2));
    let ids: std::collections::HashSet<_> = requests.iter().map(|r| &r.request_id).collect();
    assert_eq!(ids.len(), 4, "every request has its own id");
}

#[tokio::test]
async fn no_token_gets_a_bare_bearer_challenge() {
    let sandbox = sandbox().await;
    let response = get_https(&sandbox, None, "").await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some("Bearer realm=\"ibkr-oauth-sandbox\"")
    );
    assert!(header(&response, "x-request-id").is_some());
    assert_eq!(
        problem(response, 401).await,
        "authorization: missing; send Authorization: Bearer <access token>"
    );
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token() {
    let sandbox = sandbox().await;
    let other = builder().start().await.unwrap();
    let foreign = echo_token(&other).await;
    for (token, detail) in [
        ("junk", "access token: not issued by this sandbox"),
        (foreign.as_str(), "access token: not issued by this sandbox"),
    ] {
        let response = get_https(&sandbox, Some(token), "").await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some("Bearer realm=\"ibkr-oauth-sandbox\", error=\"invalid_token\"")
        );
        let got = problem(response, 401).await;
        assert!(got.starts_with(detail), "{got}");
    }
    // Expired by the sandbox's clock.
    let token = echo_token(&sandbox).await;
    sandbox.set_clock_offset(90_000);
    let got = problem(get_https(&sandbox, Some(&token), "").await, 401).await;
    assert!(got.starts_with("access token: expired at "), "{got}");
}

#[tokio::test]
async fn a_revoked_token_gets_401_and_a_new_one_works() {
    let sandbox = sandbox().await;
    let kept = echo_token(&sandbox).await;
    let revoked = echo_token(&sandbox).await;
    let claims = sandbox.revoke_token(&revoked).unwrap();
    assert_eq!(claims.sub, CLIENT);
    let detail = problem(get_https(&sandbox, Some(&revoked), "").await, 401).await;
    assert_eq!(detail, "access token: revoked");
    assert_eq!(get_https(&sandbox, Some(&kept), "").await.status(), 200);
    assert!(sandbox.verify_access_token(&revoked).is_err());
    assert!(sandbox.revoke_token("junk").is_err());

    assert_eq!(sandbox.revoke_all_tokens(), 2);
    assert_eq!(get_https(&sandbox, Some(&kept), "").await.status(), 401);
    let fresh = echo_token(&sandbox).await;
    assert_eq!(get_https(&sandbox, Some(&fresh), "").await.status(), 200);
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403_insufficient_scope() {
    let sandbox = sandbox().await;
    let token = access_token(&sandbox, &Signer::rs256(), CLIENT, "sso-sessions.write").await;
    let response = get_https(&sandbox, Some(&token), "").await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(
            "Bearer realm=\"ibkr-oauth-sandbox\", error=\"insufficient_scope\", scope=\"echo.read\""
        )
    );
    assert_eq!(
        problem(response, 403).await,
        "access token: scope \"echo.read\" is required; the token was granted \"sso-sessions.write\""
    );
    let read_only = access_token(&sandbox, &Signer::rs256(), CLIENT, "echo.read").await;
    let body = Signer::rs256().sign(&json!({"iss": CLIENT}));
    let response = post_signed(&sandbox, &read_only, "application/jwt", body).await;
    let detail = problem(response, 403).await;
    assert!(
        detail.starts_with("access token: scope \"echo.write\" is required"),
        "{detail}"
    );
}

#[tokio::test]
async fn authorization_twice_is_an_invalid_request() {
    let sandbox = sandbox().await;
    let response = http()
        .get(sandbox.echo_https_url())
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some("Bearer realm=\"ibkr-oauth-sandbox\", error=\"invalid_request\"")
    );
    assert_eq!(
        problem(response, 400).await,
        "authorization: given more than once"
    );
}

#[tokio::test]
async fn a_signed_body_is_echoed_and_logged_by_kid() {
    let sandbox = sandbox().await;
    let token = echo_token(&sandbox).await;
    let n = now();
    let body = Signer::eddsa().sign(&json!({"iss": CLIENT, "iat": n - 10, "exp": n + 20}));
    let response = post_signed(&sandbox, &token, "application/jwt", body).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo,
        json!({"requestMethod": "POST", "securityPolicy": "SIGNED_JWT", "queryParameters": {}})
    );
    let entry = sandbox.last_request().unwrap();
    assert_eq!(entry.endpoint, Endpoint::EchoSignedJwt);
    assert_eq!(entry.kid.as_deref(), Some("ed"));
    assert_eq!(entry.signed_body_claims.unwrap()["iss"], CLIENT);
    assert!(matches!(
        entry.outcome,
        Outcome::Answered { status: 200, .. }
    ));
}

#[tokio::test]
async fn bad_signed_bodies_are_refused_each_with_its_detail() {
    let sandbox = sandbox().await;
    let token = echo_token(&sandbox).await;
    let n = now();
    let good = json!({"iss": CLIENT});
    let under = |signer: Signer, kid: &'static str| Signer { kid, ..signer };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            Signer::rs256().sign(&good),
            415,
            "content-type: \"application/json\" is not application/jwt",
        ),
        (
            "application/jwt",
            "not a jws".into(),
            400,
            "signed body: not a compact JWS (expected three base64url parts separated by dots)",
        ),
        (
            "application/jwt",
            Signer::wrong_key().sign(&good),
            400,
            "signed body: signature does not verify with the public key of kid \"rsa\"",
        ),
        (
            "application/jwt",
            under(Signer::eddsa(), "main").sign(&good),
            400,
            "signed body: unknown kid \"main\"; the signature verifies with the key registered as kid \"ed\"",
        ),
        (
            "application/jwt",
            Signer::limited().sign(&good),
            400,
            "signed body: kid \"limited\" is registered for another client, not for the token's client \"test-client\"",
        ),
        (
            "application/jwt",
            Signer::rs256().sign(&json!({"iss": CLIENT, "exp": n - 100})),
            400,
            "signed body: exp ",
        ),
        (
            "application/jwt",
            Signer::rs256().sign(&json!({"iss": "someone"})),
            400,
            "signed body: iss \"someone\" is not the token's client id \"test-client\"",
        ),
        (
            "application/jwt",
            Signer::rs256().sign(&json!({})),
            400,
            "signed body: iss missing or not a string",
        ),
    ];
    for (content_type, body, status, detail) in cases {
        let got = problem(
            post_signed(&sandbox, &token, content_type, body).await,
            status,
        )
        .await;
        assert!(
            got.starts_with(detail),
            "{got:?} does not start with {detail:?}"
        );
    }
}
