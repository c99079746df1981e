//! The SSO and brokerage session endpoints over HTTP: both spellings of the sso-sessions body,
//! its refusals, each endpoint's answer shape, and every session fault.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ibkr_oauth_sandbox::{
    AUTH_STATUS_PATH, Endpoint, ISERVER_ACCOUNTS_PATH, LOGOUT_PATH, PORTFOLIO_ACCOUNTS_PATH,
    RunningSandbox, SSO_VALIDATE_PATH, SSODH_INIT_PATH, SessionFault, TICKLE_PATH,
};
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "alice123";

async fn access_token(sandbox: &RunningSandbox, scope: &str) -> String {
    let assertion = Signer::rs256().sign(&claims(now()));
    let response = send(&http(), sandbox, &Body::Form(form(&assertion, Some(scope)))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// What working clients sign: `ip`, `credential`, `iss`, `iat`, `exp` (no `jti`, no `service`).
fn working_claims(ip: &str) -> Value {
    let now = now();
    json!({"ip": ip, "credential": USER, "iss": CLIENT, "iat": now, "exp": now + 86_400})
}

async fn post_sso(sandbox: &RunningSandbox, token: &str, body: String) -> reqwest::Response {
    http()
        .post(sandbox.sso_sessions_url())
        .bearer_auth(token)
        .header("content-type", "application/jwt")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Opens an SSO session with `claims`; returns the SSO bearer.
async fn open_with(sandbox: &RunningSandbox, claims: &Value) -> String {
    let token = access_token(sandbox, "sso-sessions.write").await;
    let response = post_sso(sandbox, &token, Signer::rs256().sign(claims)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn open(sandbox: &RunningSandbox) -> String {
    open_with(sandbox, &working_claims("203.0.113.7")).await
}

async fn call(
    sandbox: &RunningSandbox,
    method: Method,
    path: &str,
    sso: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http().request(method, sandbox.url(path)).bearer_auth(sso);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn init(sandbox: &RunningSandbox, sso: &str, compete: bool) -> (u16, Value) {
    let body = json!({"publish": true, "compete": compete});
    call(sandbox, Method::POST, SSODH_INIT_PATH, sso, Some(body)).await
}

async fn tickle(sandbox: &RunningSandbox, sso: &str) -> (u16, Value) {
    call(sandbox, Method::GET, TICKLE_PATH, sso, None).await
}

async fn iserver_accounts(sandbox: &RunningSandbox, sso: &str) -> (u16, Value) {
    call(sandbox, Method::GET, ISERVER_ACCOUNTS_PATH, sso, None).await
}

fn auth(tickle: &Value) -> (bool, bool) {
    let status = &tickle["iserver"]["authStatus"];
    (
        status["authenticated"].as_bool().unwrap(),
        status["competing"].as_bool().unwrap(),
    )
}

fn no_bridge() -> (u16, Value) {
    (
        400,
        json!({"error": "Bad Request: no bridge", "statusCode": 400}),
    )
}

#[tokio::test]
async fn opens_with_what_working_clients_sign_and_validates() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    let (status, validate) = call(&sandbox, Method::GET, SSO_VALIDATE_PATH, &sso, None).await;
    assert_eq!(status, 200);
    assert_eq!(validate["RESULT"], true);
    assert_eq!(validate["USER_NAME"], USER);
    assert_eq!(validate["CREDENTIAL"], USER);
    assert_eq!(validate["IP"], "203.0.113.7");
    let expires = validate["EXPIRES"].as_u64().unwrap();
    assert!(expires > 0 && expires <= 6 * 60 * 1000, "{expires}");
    for key in [
        "USER_ID",
        "AUTH_TIME",
        "IS_MASTER",
        "lastAccessed",
        "features",
    ] {
        assert!(validate.get(key).is_some(), "{key} missing: {validate}");
    }
    // The request log names the endpoints; the SSO bearer is nowhere in it.
    let log = sandbox.requests();
    let endpoints: Vec<_> = log.iter().map(|r| r.endpoint).collect();
    assert_eq!(
        endpoints,
        [
            Endpoint::Token,
            Endpoint::SsoSessions,
            Endpoint::SsoValidate
        ]
    );
    assert_eq!(
        log[1].signed_body_claims.as_ref().unwrap()["credential"],
        USER
    );
    assert_eq!(log[2].client_id.as_deref(), Some(CLIENT));
    assert!(!format!("{log:?}").contains(&sso));
}

#[tokio::test]
async fn opens_with_the_spec_claim_names_and_refuses_a_replayed_jti() {
    let sandbox = sandbox().await;
    let claims = json!({
        "credential": USER, "iss": CLIENT, "jti": fresh_jti(), "service": "AM_LOGIN",
        "userIp": "2001:db8::7"
    });
    let sso = open_with(&sandbox, &claims).await;
    let (_, validate) = call(&sandbox, Method::GET, SSO_VALIDATE_PATH, &sso, None).await;
    assert_eq!(validate["IP"], "2001:db8::7");
    let token = access_token(&sandbox, "sso-sessions.write").await;
    let response = post_sso(&sandbox, &token, Signer::rs256().sign(&claims)).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("signed body: jti \"jti-"), "{detail}");
    assert!(detail.ends_with("was already used (replay)"), "{detail}");
}

#[tokio::test]
async fn sso_sessions_refusals() {
    let sandbox = sandbox().await;
    let token = access_token(&sandbox, "sso-sessions.write").await;
    let good = Signer::rs256().sign(&working_claims("203.0.113.7"));
    let refused = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        (status, problem["detail"].as_str().unwrap().to_owned())
    };

    let none = http()
        .post(sandbox.sso_sessions_url())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let echo_only = access_token(&sandbox, "echo.read").await;
    let (status, detail) = refused(post_sso(&sandbox, &echo_only, good.clone()).await).await;
    assert_eq!(status, 403);
    assert!(
        detail.contains("scope \"sso-sessions.write\" is required"),
        "{detail}"
    );
    let json_body = http()
        .post(sandbox.sso_sessions_url())
        .bearer_auth(&token)
        .json(&working_claims("203.0.113.7"))
        .send()
        .await
        .unwrap();
    let (status, detail) = refused(json_body).await;
    assert_eq!(status, 415);
    assert_eq!(
        detail,
        "content-type: \"application/json\" is not application/jwt"
    );

    let cases = [
        (
            Signer::wrong_key().sign(&working_claims("203.0.113.7")),
            "signed body: signature does not verify with the public key of kid \"rsa\"",
        ),
        (
            Signer::rs256().sign(&with(
                working_claims("1.2.3.4"),
                json!({"credential": null}),
            )),
            "signed body: credential missing; sign the IBKR username as \"credential\"",
        ),
        (
            Signer::rs256().sign(&with(working_claims("1.2.3.4"), json!({"iss": "other"}))),
            "signed body: iss \"other\" is not the token's client id \"test-client\"",
        ),
        (
            Signer::rs256().sign(&working_claims("my-laptop")),
            "signed body: ip \"my-laptop\" is not an IP address",
        ),
    ];
    for (body, expected) in cases {
        let (status, detail) = refused(post_sso(&sandbox, &token, body).await).await;
        assert_eq!((status, detail.as_str()), (400, expected));
    }
    assert_eq!(sandbox.open_sessions(), 0);
}

#[tokio::test]
async fn brokerage_session_endpoints_and_the_read_endpoints() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;

    // The SSO session is enough for the portfolio; /iserver needs the brokerage session.
    let (status, accounts) = call(&sandbox, Method::GET, PORTFOLIO_ACCOUNTS_PATH, &sso, None).await;
    assert_eq!(status, 200);
    let account = accounts[0]["accountId"].as_str().unwrap().to_owned();
    assert!(account.starts_with("DU"), "{accounts}");
    assert_eq!(accounts[0]["id"], account.as_str());
    assert_eq!(iserver_accounts(&sandbox, &sso).await, no_bridge());

    // Tickle, GET as working clients send it and POST as the spec says.
    for method in [Method::GET, Method::POST] {
        let (status, body) = call(&sandbox, method, TICKLE_PATH, &sso, None).await;
        assert_eq!(status, 200);
        assert_eq!(auth(&body), (false, false));
        assert_eq!(body["collission"], false);
        assert!(body["ssoExpires"].as_u64().unwrap() > 0);
        assert!(body["session"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(body["userId"].as_u64().is_some());
        assert_eq!(body["iserver"]["authStatus"]["connected"], true);
    }

    let (status, body) = init(&sandbox, &sso, true).await;
    assert_eq!(status, 200);
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["competing"], false);
    assert_eq!(body["connected"], true);
    assert!(body["MAC"].is_string() && body["serverInfo"]["serverName"].is_string());
    assert!(sandbox.brokerage_session_open(USER));

    let (_, body) = tickle(&sandbox, &sso).await;
    assert_eq!(auth(&body), (true, false));
    let (status, body) = call(&sandbox, Method::POST, AUTH_STATUS_PATH, &sso, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["authenticated"].clone(), body["fail"].clone()),
        (json!(true), json!(""))
    );
    let (status, body) = iserver_accounts(&sandbox, &sso).await;
    assert_eq!(status, 200);
    assert_eq!(body["accounts"], json!([account]));
    assert_eq!(body["selectedAccount"], account.as_str());

    // A body that is not JSON is IBKR's errorResponse.
    let response = http()
        .post(sandbox.url(SSODH_INIT_PATH))
        .bearer_auth(&sso)
        .body("publish")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["statusCode"], 400);

    // A method the endpoint does not take.
    let response = http().put(sandbox.url(TICKLE_PATH)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    init(&sandbox, &sso, true).await;
    let (status, body) = call(&sandbox, Method::POST, LOGOUT_PATH, &sso, None).await;
    assert_eq!((status, body), (200, json!({"status": true})));
    assert!(!sandbox.brokerage_session_open(USER));
    assert_eq!(sandbox.open_sessions(), 0);
    let response = http()
        .get(sandbox.url(TICKLE_PATH))
        .bearer_auth(&sso)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "SSO session: logged out; open a new one with POST /gw/api/v1/sso-sessions"
    );
    let (status, _) = tickle(&sandbox, "not-a-session").await;
    assert_eq!(status, 401);
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_and_tickles_keep_them() {
    let sandbox = builder()
        .session_idle_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let kept = open(&sandbox).await;
    let idle = open(&sandbox).await;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(50)).await;
        let (status, body) = tickle(&sandbox, &kept).await;
        assert_eq!(status, 200);
        assert_eq!(body["ssoExpires"], 60_000);
    }
    let (status, problem) = tickle(&sandbox, &idle).await;
    assert_eq!(status, 401);
    assert_eq!(
        problem["detail"],
        "SSO session: expired after 60000 ms without a request; open a new one with POST /gw/api/v1/sso-sessions"
    );
    sandbox.inject_session_fault(SessionFault::ExpireSessions);
    assert_eq!(tickle(&sandbox, &kept).await.0, 401);
}

#[tokio::test]
async fn a_competing_login_kicks_the_brokerage_session() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    init(&sandbox, &sso, true).await;
    sandbox.inject_session_fault(SessionFault::CompetingLogin);
    let (_, body) = tickle(&sandbox, &sso).await;
    assert_eq!(auth(&body), (false, true));
    assert_eq!(iserver_accounts(&sandbox, &sso).await, no_bridge());
    let (_, body) = init(&sandbox, &sso, false).await;
    assert_eq!(
        (body["authenticated"].clone(), body["competing"].clone()),
        (json!(false), json!(true))
    );
    let (_, body) = init(&sandbox, &sso, true).await;
    assert_eq!(
        (body["authenticated"].clone(), body["competing"].clone()),
        (json!(true), json!(false))
    );

    // Another session of the same username takes it the same way.
    let other = open(&sandbox).await;
    init(&sandbox, &other, true).await;
    let (_, body) = tickle(&sandbox, &sso).await;
    assert_eq!(auth(&body), (false, true));
    assert_eq!(iserver_accounts(&sandbox, &other).await.0, 200);
}

#[tokio::test]
async fn no_bridge_until_the_brokerage_session_is_opened_again() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    init(&sandbox, &sso, true).await;
    assert_eq!(iserver_accounts(&sandbox, &sso).await.0, 200);
    sandbox.inject_session_fault(SessionFault::NoBridge);
    assert_eq!(iserver_accounts(&sandbox, &sso).await, no_bridge());
    assert_eq!(auth(&tickle(&sandbox, &sso).await.1), (false, false));
    assert_eq!(init(&sandbox, &sso, true).await.0, 200);
    assert_eq!(iserver_accounts(&sandbox, &sso).await.0, 200);
}

#[tokio::test]
async fn failed_to_generate_sso_dh_token() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    sandbox.inject_session_fault(SessionFault::SsoDhTokenFailure { times: 1 });
    let failed = init(&sandbox, &sso, true).await;
    assert_eq!(
        failed,
        (
            500,
            json!({"error": "failed to generate sso dh token", "statusCode": 500})
        )
    );
    assert_eq!(init(&sandbox, &sso, false).await.1["authenticated"], true);
}

#[tokio::test]
async fn staged_decay_healed_by_init_or_ending_in_401() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    init(&sandbox, &sso, true).await;
    sandbox.inject_session_fault(SessionFault::Decay);
    let query_first = (
        500,
        json!({"error": "Please query /accounts first", "statusCode": 500}),
    );
    assert_eq!(iserver_accounts(&sandbox, &sso).await, query_first);
    assert_eq!(auth(&tickle(&sandbox, &sso).await.1), (true, false));
    assert_eq!(auth(&tickle(&sandbox, &sso).await.1), (false, false));
    assert_eq!(init(&sandbox, &sso, true).await.1["authenticated"], true);
    assert_eq!(iserver_accounts(&sandbox, &sso).await.0, 200);

    sandbox.inject_session_fault(SessionFault::Decay);
    for _ in 0..3 {
        tickle(&sandbox, &sso).await;
    }
    let (status, problem) = call(&sandbox, Method::GET, PORTFOLIO_ACCOUNTS_PATH, &sso, None).await;
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("SSO session: decayed;")
    );
}

#[tokio::test(start_paused = true)]
async fn the_nightly_reset_window() {
    let sandbox = sandbox().await;
    let sso = open(&sandbox).await;
    init(&sandbox, &sso, true).await;
    sandbox.inject_session_fault(SessionFault::NightlyReset {
        lasts: Duration::from_secs(300),
    });
    assert_eq!(
        tickle(&sandbox, &sso).await,
        (200, json!({"error": "failed to process request"}))
    );
    let (status, body) = init(&sandbox, &sso, true).await;
    assert_eq!((status, body["statusCode"].clone()), (503, json!(503)));
    assert_eq!(iserver_accounts(&sandbox, &sso).await.0, 503);
    assert_eq!(
        call(&sandbox, Method::GET, PORTFOLIO_ACCOUNTS_PATH, &sso, None)
            .await
            .0,
        200,
        "the SSO session works through the reset"
    );
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(
        iserver_accounts(&sandbox, &sso).await,
        no_bridge(),
        "the reset closed it"
    );
    assert_eq!(init(&sandbox, &sso, true).await.1["authenticated"], true);
    assert_eq!(iserver_accounts(&sandbox, &sso).await.0, 200);
}

#[tokio::test]
async fn an_ip_change_ends_the_sessions_bound_to_the_old_one() {
    let sandbox = sandbox().await;
    let sso = open_with(&sandbox, &working_claims("198.51.100.1")).await;
    sandbox.inject_session_fault(SessionFault::IpChange {
        new_ip: "198.51.100.2".parse().unwrap(),
    });
    assert_eq!(sandbox.caller_ip(), Some("198.51.100.2".parse().unwrap()));
    let (status, problem) = tickle(&sandbox, &sso).await;
    assert_eq!(status, 401);
    assert_eq!(
        problem["detail"],
        "SSO session: opened for IP 198.51.100.1, but requests now come from 198.51.100.2; open a new one with POST /gw/api/v1/sso-sessions"
    );
    let token = access_token(&sandbox, "sso-sessions.write").await;
    let stale = post_sso(
        &sandbox,
        &token,
        Signer::rs256().sign(&working_claims("198.51.100.1")),
    )
    .await;
    assert_eq!(stale.status(), 400);
    let sso = open_with(&sandbox, &working_claims("198.51.100.2")).await;
    assert_eq!(tickle(&sandbox, &sso).await.0, 200);
}

#[tokio::test]
async fn trace_lines_name_the_session_endpoints_never_the_bearer() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let sandbox = builder()
        .trace_requests_to(move |line| sink.lock().unwrap().push(line.to_owned()))
        .start()
        .await
        .unwrap();
    let sso = open(&sandbox).await;
    tickle(&sandbox, &sso).await;
    iserver_accounts(&sandbox, &sso).await;
    let lines = lines.lock().unwrap().clone();
    assert!(lines[1].contains("endpoint=sso-sessions POST /gw/api/v1/sso-sessions status=200"));
    assert!(lines[2].contains("client=\"test-client\""), "{}", lines[2]);
    assert!(lines[2].contains("endpoint=tickle GET /v1/api/tickle status=200 outcome=ok"));
    assert!(lines[3].contains("status=400 outcome=refused detail=\"Bad Request: no bridge\""));
    assert!(lines.iter().all(|line| !line.contains(&sso)));
}

#[tokio::test]
async fn serves_https_with_a_ca_made_at_start() {
    let sandbox = builder().tls(true).start().await.unwrap();
    assert!(sandbox.base_url().starts_with("https://127.0.0.1:"));
    let ca = sandbox.ca_certificate_pem().unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let assertion = Signer::rs256().sign(&claims(now()));
    let response = trusting
        .post(sandbox.token_url())
        .form(&form(&assertion, Some("sso-sessions.write")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // By name too: the certificate names localhost.
    let by_name = sandbox.url(TICKLE_PATH).replace("127.0.0.1", "localhost");
    let response = trusting.get(by_name).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // A client that does not trust the CA cannot connect; the sandbox goes on serving.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(sandbox.url(TICKLE_PATH))
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        trusting
            .get(sandbox.url(TICKLE_PATH))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert!(sandbox_plain_has_no_ca().await);
}

async fn sandbox_plain_has_no_ca() -> bool {
    let plain = sandbox().await;
    plain.ca_certificate_pem().is_none() && plain.base_url().starts_with("http://")
}
