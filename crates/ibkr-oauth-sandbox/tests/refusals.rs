//! Every refusal of the sandbox: `400 application/problem+json` in IBKR's shape, with the exact
//! `detail` of the check that failed; and hostile input that must be refused, never crash it.

mod common;

use common::*;
use ibkr_oauth_sandbox::Outcome;
use serde_json::{Value, json};

async fn assert_refused(
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
    response: reqwest::Response,
) -> String {
    assert_eq!(response.status(), 400);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = response.json().await.expect("a JSON problem");
    assert_eq!(problem["type"], "/simple");
    assert_eq!(problem["title"], "Bad Request");
    assert_eq!(problem["status"], 400);
    let detail = problem["detail"].as_str().expect("a detail").to_owned();
    let logged = sandbox.last_request().expect("logged");
    assert_eq!(
        logged.outcome,
        Outcome::Answered {
            status: 400,
            detail: Some(detail.clone())
        }
    );
    detail
}

#[tokio::test]
async fn each_check_refuses_with_its_own_detail() {
    let sandbox = sandbox().await;
    let http = http();
    let cases = refusal_cases();
    for case in &cases {
        let response = send(&http, &sandbox, &case.body).await;
        let detail = assert_refused(&sandbox, response).await;
        assert!(
            case.detail.matches(&detail),
            "{}: expected {:?}, got {detail:?}",
            case.name,
            case.detail
        );
    }
    assert_eq!(sandbox.tokens_issued(), 0);
    assert_eq!(sandbox.request_count(), cases.len() as u64);
    // After all that, a good request still gets a token.
    let good = Signer::rs256().sign(&claims(now()));
    assert_eq!(
        send(&http, &sandbox, &Body::form(&good)).await.status(),
        200
    );
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let sandbox = sandbox().await;
    let http = http();
    let claims = with(claims(now()), json!({"jti": "once-only"}));
    let assertion = Signer::eddsa().sign(&claims);
    assert_eq!(
        send(&http, &sandbox, &Body::form(&assertion))
            .await
            .status(),
        200
    );
    let response = send(&http, &sandbox, &Body::form(&assertion)).await;
    assert_eq!(
        assert_refused(&sandbox, response).await,
        "client_assertion: jti \"once-only\" was already used (replay)"
    );
    // A new assertion with the same jti is a replay too: the jti is what counts.
    let resigned = Signer::rs256().sign(&claims);
    let response = send(&http, &sandbox, &Body::form(&resigned)).await;
    assert_eq!(
        assert_refused(&sandbox, response).await,
        "client_assertion: jti \"once-only\" was already used (replay)"
    );
}

#[tokio::test]
async fn a_refused_assertion_does_not_spend_its_jti() {
    let sandbox = sandbox().await;
    let http = http();
    let assertion = Signer::rs256().sign(&claims(now()));
    let response = send(&http, &sandbox, &Body::Form(form(&assertion, Some("ab")))).await;
    assert_refused(&sandbox, response).await;
    assert_eq!(
        send(&http, &sandbox, &Body::form(&assertion))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn concurrent_uses_of_one_assertion_get_one_token() {
    let sandbox = sandbox().await;
    let assertion = Signer::es256().sign(&claims(now()));
    let body = Body::form(&assertion);
    // Three clients, so three connections race.
    let clients = [http(), http(), http()];
    let (a, b, c) = tokio::join!(
        send(&clients[0], &sandbox, &body),
        send(&clients[1], &sandbox, &body),
        send(&clients[2], &sandbox, &body)
    );
    let ok = [a.status(), b.status(), c.status()]
        .iter()
        .filter(|s| s.as_u16() == 200)
        .count();
    assert_eq!(ok, 1);
    assert_eq!(sandbox.tokens_issued(), 1);
}

#[tokio::test]
async fn a_custom_audience_is_required() {
    let audience = "https://api.ibkr.com/oauth2/api/v1/token";
    let sandbox = builder().audience(audience).start().await.unwrap();
    let http = http();
    let default_aud = Signer::rs256().sign(&claims(now()));
    let response = send(&http, &sandbox, &Body::form(&default_aud)).await;
    assert_eq!(
        assert_refused(&sandbox, response).await,
        format!("client_assertion: aud \"/token\" is not the expected audience \"{audience}\"")
    );
    let right = Signer::rs256().sign(&with(claims(now()), json!({"aud": ["other", audience]})));
    assert_eq!(
        send(&http, &sandbox, &Body::form(&right)).await.status(),
        200
    );
}

#[tokio::test]
async fn tighter_assertion_limits_apply() {
    let sandbox = builder()
        .max_assertion_lifetime(std::time::Duration::from_secs(10))
        .iat_tolerance(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap();
    let http = http();
    let now = now();
    let long = Signer::rs256().sign(&with(claims(now), json!({"exp": now + 60})));
    let detail = assert_refused(&sandbox, send(&http, &sandbox, &Body::form(&long)).await).await;
    assert!(
        detail.starts_with(&format!(
            "client_assertion: exp {} is more than 10 seconds after",
            now + 60
        )),
        "{detail}"
    );
    let ahead = Signer::rs256().sign(&with(claims(now), json!({"iat": now + 30, "exp": now + 5})));
    let detail = assert_refused(&sandbox, send(&http, &sandbox, &Body::form(&ahead)).await).await;
    assert!(
        detail.starts_with(&format!(
            "client_assertion: iat {} is in the future by more than 0 seconds",
            now + 30
        )),
        "{detail}"
    );
}

/// Junk of every kind: each gets a 400 problem, and the sandbox keeps serving.
#[tokio::test]
async fn hostile_input_is_refused_without_crashing() {
    let sandbox = sandbox().await;
    let http = http();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_header =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &deep);
    let ec_sig_on_rsa_key = {
        let signed = Signer::es256().sign(&claims(now()));
        let mut parts: Vec<&str> = signed.split('.').collect();
        let rs_header = raw_jws(&json!({"alg": "RS256", "kid": "rsa"}), &json!({}), "");
        let h = rs_header.split('.').next().unwrap().to_owned();
        parts[0] = &h;
        parts.join(".")
    };
    let short_ed_sig = {
        let signed = Signer::eddsa().sign(&claims(now()));
        let (head, _) = signed.rsplit_once('.').unwrap();
        format!("{head}.AAAA")
    };
    let huge_rsa_sig = {
        let signed = Signer::rs256().sign(&claims(now()));
        let (head, _) = signed.rsplit_once('.').unwrap();
        format!("{head}.{}", "A".repeat(4000))
    };
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, b'=', b'&', 0x80],
        b"&&&===&&&".to_vec(),
        b"grant_type=%ZZ&client_assertion=%".to_vec(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={deep_header}.e30.AA").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={ec_sig_on_rsa_key}").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={short_ed_sig}").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={huge_rsa_sig}").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion=....").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion=e30.e30.e30").into_bytes(),
        format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion=bnVsbA.bnVsbA.AA").into_bytes(),
        vec![b'a'; 65_536],
    ];
    for bytes in bodies {
        let body = Body::Raw {
            content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
            bytes,
        };
        let response = send(&http, &sandbox, &body).await;
        let detail = assert_refused(&sandbox, response).await;
        assert!(!detail.is_empty() && detail.len() < 400, "{detail}");
    }
    // A body sent without Content-Length (chunked) over the limit, and a header value that
    // is not UTF-8: written by hand, since reqwest would not send either.
    let mut chunked = Vec::new();
    for chunk in vec![b'a'; 70_000].chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = b"Transfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nUser-Agent: \xff\xfe\r\n";
    let answer = raw_post(&sandbox, head, &chunked).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer
            .contains("\"detail\":\"request body: unreadable or more than the 65536-byte limit\""),
        "{answer}"
    );
    assert_eq!(
        sandbox.last_request().unwrap().user_agent.as_deref(),
        Some("\u{fffd}\u{fffd}")
    );
    let good = Signer::ps256().sign(&claims(now()));
    assert_eq!(
        send(&http, &sandbox, &Body::form(&good)).await.status(),
        200
    );
}

/// Sends a POST to the token endpoint over a bare TCP connection and returns the answer.
async fn raw_post(
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
    headers: &[u8],
    body: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(sandbox.local_addr())
        .await
        .unwrap();
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        ibkr_oauth_sandbox::TOKEN_PATH,
        sandbox.local_addr()
    )
    .into_bytes();
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    // The sandbox may answer and close before reading all of an oversized body.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
