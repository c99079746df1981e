//! The session over real HTTP against mockito: each healing path as one keeper round
//! (`keep_once`), in real time with no waits (the keeper's timing is in `tests.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mockito::{Matcher, Server};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::tests::{Tokens, config};
use super::*;
use crate::{Algorithm, PrivateKey};

fn signer() -> Signer {
    let key = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    Signer::builder("client-1", "kid-1", key).build().unwrap()
}

fn build(server: &Server, tokens: &Arc<Tokens>, brokerage: bool, compete: Compete) -> Session {
    Session::builder(Arc::clone(tokens), signer(), config(brokerage, compete))
        .base_url(server.url())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn sso(server: &mut Server, access: &str, token: &str) -> mockito::Mock {
    server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .match_header("authorization", format!("Bearer {access}").as_str())
        .match_header("content-type", "application/jwt")
        .with_status(201)
        .with_header(JSON.0, JSON.1)
        .with_body(format!(
            r#"{{"active":true,"access_token":"{token}","token_type":"Bearer"}}"#
        ))
        .create_async()
        .await
}

fn tickle_body(authenticated: bool, competing: bool) -> String {
    format!(
        r#"{{"session":"abc","ssoExpires":460311,"collission":false,"userId":1,
        "iserver":{{"authStatus":{{"authenticated":{authenticated},"competing":{competing},
        "connected":true,"message":""}}}}}}"#
    )
}

async fn tickle(server: &mut Server, sso: &str, status: usize, body: &str) -> mockito::Mock {
    server
        .mock("GET", "/v1/api/tickle")
        .match_header("authorization", format!("Bearer {sso}").as_str())
        .with_status(status)
        .with_header(JSON.0, JSON.1)
        .with_body(body)
        .create_async()
        .await
}

#[tokio::test]
async fn opens_with_a_signed_jws_of_the_working_clients_claims() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    let create = server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .match_header("authorization", "Bearer access-1")
        .match_header("content-type", "application/jwt")
        .match_body(Matcher::Regex(r"^[\w-]+\.[\w-]+\.[\w-]+$".into()))
        .with_status(200)
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"active":true,"access_token":"sso-http-1"}"#)
        .expect(1)
        .create_async()
        .await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    let status = s.open().await.unwrap();
    create.assert_async().await;
    assert_eq!(status.state, SessionState::ReadOnly);
    assert_eq!(
        s.sso_token().await.unwrap().secret().expose_secret(),
        "sso-http-1"
    );
    s.close().await.ok();
}

#[tokio::test]
async fn the_jws_payload_carries_credential_ip_iss_iat_exp_jti() {
    // Read the body through a mock that answers with it (mockito keeps no request log).
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = Arc::clone(&seen);
    server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .with_status(200)
        .with_header(JSON.0, JSON.1)
        .with_body_from_request(move |request| {
            *sink.lock().unwrap() = String::from_utf8_lossy(request.body().unwrap()).into_owned();
            br#"{"active":true,"access_token":"sso-1"}"#.to_vec()
        })
        .create_async()
        .await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    s.sso_token().await.unwrap();
    let jws = seen.lock().unwrap().clone();
    let payload = jws.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["credential"], "user1234");
    assert_eq!(claims["ip"], "203.0.113.7");
    assert_eq!(claims["iss"], "client-1");
    assert!(claims["iat"].as_u64().unwrap() < claims["exp"].as_u64().unwrap());
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    assert!(
        claims.get("service").is_none(),
        "what working clients send: no service"
    );
    s.close().await.ok();
}

#[tokio::test]
async fn a_401_on_sso_sessions_brings_a_new_access_token() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    let refused = server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .match_header("authorization", "Bearer access-1")
        .with_status(401)
        .with_header("content-type", "application/problem+json")
        .with_header("x-request-id", "req-7")
        .with_body(r#"{"type":"/simple","title":"Unauthorized","status":401,"detail":"Access token expired"}"#)
        .expect(1)
        .create_async()
        .await;
    let ok = sso(&mut server, "access-2", "sso-2").await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    assert_eq!(
        s.sso_token().await.unwrap().secret().expose_secret(),
        "sso-2"
    );
    refused.assert_async().await;
    ok.assert_async().await;
    assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1);
    s.close().await.ok();
}

#[tokio::test]
async fn a_401_on_tickle_opens_a_new_sso_session() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    let first = sso(&mut server, "access-1", "sso-1").await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    first.remove_async().await;
    let gone = tickle(
        &mut server,
        "sso-1",
        401,
        r#"{"error":"not authenticated"}"#,
    )
    .await;
    let second = sso(&mut server, "access-1", "sso-2").await;
    assert!(s.inner.keep_once().await.is_ok());
    gone.assert_async().await;
    second.assert_async().await;
    assert_eq!(
        s.sso_token().await.unwrap().secret().expose_secret(),
        "sso-2"
    );
    s.close().await.ok();
}

#[tokio::test]
async fn not_authenticated_on_tickle_reinits_with_compete() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    let init = server
        .mock("POST", "/v1/api/iserver/auth/ssodh/init")
        .match_header("authorization", "Bearer sso-1")
        .match_body(Matcher::Json(serde_json::json!({"publish": true, "compete": true})))
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"authenticated":true,"established":true,"competing":false,"connected":true,"message":""}"#)
        .expect(2)
        .create_async()
        .await;
    let s = build(&server, &tokens, true, Compete::AtOpen);
    assert_eq!(s.open().await.unwrap().state, SessionState::Brokerage);
    tickle(&mut server, "sso-1", 200, &tickle_body(false, false)).await;
    assert!(s.inner.keep_once().await.is_ok());
    init.assert_async().await;
    assert_eq!(s.status().state, SessionState::Brokerage);
    s.close().await.ok();
}

#[tokio::test]
async fn competing_on_tickle_is_reported_with_at_open() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    let init = server
        .mock("POST", "/v1/api/iserver/auth/ssodh/init")
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"authenticated":true,"competing":false,"connected":true}"#)
        .expect(1)
        .create_async()
        .await;
    let s = build(&server, &tokens, true, Compete::AtOpen);
    s.open().await.unwrap();
    tickle(&mut server, "sso-1", 200, &tickle_body(true, true)).await;
    assert!(s.inner.keep_once().await.is_ok());
    init.assert_async().await;
    assert_eq!(s.status().state, SessionState::Competing);
    s.close().await.ok();
}

#[tokio::test]
async fn a_timeout_leaves_the_session_stale_but_usable() {
    // A listener that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    // The same session, now pointed at the silent port: the SSO token is kept, the tickle times out.
    let calls = calls::HttpCalls {
        base_url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .no_proxy()
            .build()
            .unwrap(),
        user_agent: "test".into(),
        max_response_bytes: 1024,
        clock: Arc::new(crate::clock::SystemClock),
        signer: signer(),
        #[cfg(feature = "pacing")]
        pacer: None,
        fence: None,
    };
    let token = s.sso_token().await.unwrap();
    let err = calls::Calls::tickle(&calls, &token).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Transport {
                call: SessionCall::Tickle,
                timeout: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("sso-1"));
    drop(silent);
    s.close().await.ok();
}

#[tokio::test]
async fn close_logs_out_with_the_sso_token() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    let logout = server
        .mock("POST", "/v1/api/logout")
        .match_header("authorization", "Bearer sso-1")
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"status":true}"#)
        .expect(1)
        .create_async()
        .await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    s.close().await.unwrap();
    logout.assert_async().await;
}

#[tokio::test]
async fn validate_reads_ibkrs_answer() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    server
        .mock("GET", "/v1/api/sso/validate")
        .match_header("authorization", "Bearer sso-1")
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"USER_ID":123456789,"USER_NAME":"user1234","RESULT":true,"AUTH_TIME":1702580846836,"CREDENTIAL":"user1234","IP":"203.0.113.7","EXPIRES":415890,"IS_MASTER":false,"LOGIN_TYPE":2}"#)
        .create_async()
        .await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    let v = s.validate().await.unwrap();
    assert!(v.valid);
    assert_eq!(v.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(v.expires, Some(Duration::from_millis(415_890)));
    s.close().await.ok();
}

#[tokio::test]
async fn a_refusal_names_the_call_and_quotes_the_request_id() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .with_status(403)
        .with_header("content-type", "application/problem+json")
        .with_header("x-request-id", "req-9")
        .with_body(r#"{"type":"/simple","title":"Forbidden","status":403,"detail":"The access token fails to have sufficient scope"}"#)
        .create_async()
        .await;
    let s = build(&server, &tokens, false, Compete::AtOpen);
    let err = s.open().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("POST /gw/api/v1/sso-sessions refused (403 Forbidden)"),
        "{text}"
    );
    assert!(text.contains("x-request-id: req-9"), "{text}");
    assert!(text.contains("sso-sessions.write"), "{text}");
    assert_eq!(err.kind(), crate::ErrorKind::Refused);
}

/// With a pacer, the session's own calls take their turns with the program's other calls:
/// `/tickle` 1/s and `/sso/validate` 1/min hold back a second call (not sent), and a 429
/// pauses its endpoint.
#[cfg(feature = "pacing")]
#[tokio::test]
async fn the_sessions_own_calls_go_through_the_pacer() {
    use crate::pacing::{Governor, Limit, Pacer, PacingError, PacingTable};
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    sso(&mut server, "access-1", "sso-1").await;
    let tickle_mock = server
        .mock("GET", "/v1/api/tickle")
        .with_header(JSON.0, JSON.1)
        .with_body(tickle_body(false, false))
        .expect(1)
        .create_async()
        .await;
    let validate = server
        .mock("GET", "/v1/api/sso/validate")
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"RESULT":true,"USER_NAME":"user1234"}"#)
        .expect(1)
        .create_async()
        .await;
    let status = server
        .mock("POST", "/v1/api/iserver/auth/status")
        .with_status(429)
        .with_header("retry-after", "30")
        .with_header(JSON.0, JSON.1)
        .with_body(r#"{"error":"Too Many Requests","statusCode":429}"#)
        .expect(1)
        .create_async()
        .await;
    // IBKR's endpoint rules; a per-user limit this test never nears.
    let table = PacingTable::ibkr()
        .global(Limit::per_second(1000).burst(100))
        .max_wait(Duration::ZERO);
    let governor = Arc::new(Governor::new(table).unwrap());
    let s = Session::builder(
        Arc::clone(&tokens),
        signer(),
        config(false, Compete::AtOpen),
    )
    .base_url(server.url())
    .pacer(Arc::clone(&governor) as Arc<dyn Pacer>)
    .build()
    .unwrap();
    s.open().await.unwrap();
    let paced = |result: Result<(), Error>, want: SessionCall| match result {
        Err(Error::Session(error)) => match &*error {
            SessionError::Paced { call, source } => {
                assert_eq!(*call, want);
                source.clone()
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    s.tickle().await.unwrap();
    let refusal = paced(s.tickle().await.map(|_| ()), SessionCall::Tickle);
    assert!(
        matches!(refusal, PacingError::OverLimit { ref endpoint, .. } if endpoint == "/tickle"),
        "{refusal:?}"
    );
    s.validate().await.unwrap();
    let refusal = paced(s.validate().await.map(|_| ()), SessionCall::Validate);
    assert!(
        refusal.retry_after().unwrap() > Duration::from_secs(59),
        "{refusal:?}"
    );
    // IBKR's 429 pauses the endpoint (Retry-After 30 s): the next call is not sent.
    assert!(s.brokerage_status().await.is_err());
    let refusal = paced(
        s.brokerage_status().await.map(|_| ()),
        SessionCall::BrokerageStatus,
    );
    assert!(matches!(refusal, PacingError::Paused { .. }), "{refusal:?}");
    tickle_mock.assert_async().await;
    validate.assert_async().await;
    status.assert_async().await;
    // sso-sessions, tickle, validate, auth status: 4 turns taken, 3 refused.
    let stats = governor.stats();
    assert_eq!((stats.admitted, stats.refused, stats.paused), (4, 3, 1));
}

/// The hook of `on_event` sees each keep-alive's latency and each re-opened session.
#[tokio::test]
async fn the_event_hook_sees_tickles_and_reopens() {
    let mut server = Server::new_async().await;
    let tokens = Arc::new(Tokens::default());
    let first = sso(&mut server, "access-1", "sso-1").await;
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let s = Session::builder(
        Arc::clone(&tokens),
        signer(),
        config(false, Compete::AtOpen),
    )
    .base_url(server.url())
    .on_event(move |event| seen.lock().unwrap().push(*event))
    .build()
    .unwrap();
    s.open().await.unwrap();
    first.remove_async().await;
    let ok = tickle(&mut server, "sso-1", 200, &tickle_body(false, false)).await;
    assert!(s.inner.keep_once().await.is_ok());
    ok.remove_async().await;
    tickle(
        &mut server,
        "sso-1",
        401,
        r#"{"error":"not authenticated"}"#,
    )
    .await;
    sso(&mut server, "access-1", "sso-2").await;
    assert!(s.inner.keep_once().await.is_ok());
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(events[0], SessionEvent::Tickled { latency } if latency < Duration::from_secs(5)),
        "{events:?}"
    );
    assert_eq!(events[1], SessionEvent::Reopened { brokerage: false });
    s.close().await.ok();
}
