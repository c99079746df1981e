//! One HTTP exchange per test against mockito (or a hand-made loopback server for the faults
//! mockito cannot produce): every response row of issue 3 and the exact error it maps to.
//! (Long on purpose: one test per response row, each spelled out.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::closed_port_url;
use ibkr_oauth::clock::Clock;
use ibkr_oauth::constants::DEFAULT_USER_AGENT;
use ibkr_oauth::{ClientAssertion, Error, ExposeSecret, StatusCode, TokenClient, TokenRequest};
use mockito::{Matcher, Server, ServerGuard};
use serde_json::json;

const PATH: &str = "/oauth2/api/v1/token";
const ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJjbGllbnQifQ.c2lnbmF0dXJl";
const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.dG9rZW4tc2lnbmF0dXJl";

/// A clock pinned at 2023-11-14T22:13:20Z.
#[derive(Debug)]
struct FixedClock;

fn pinned_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        pinned_now()
    }
}

fn client(server: &ServerGuard) -> TokenClient {
    TokenClient::builder()
        .base_url(server.url())
        .clock(Arc::new(FixedClock))
        .build()
        .unwrap()
}

fn request() -> TokenRequest {
    TokenRequest::builder()
        .assertion(ClientAssertion::new(ASSERTION))
        .scopes(["echo.read", "echo.write"])
        .build()
        .unwrap()
}

/// Serves one response to the token POST and returns what the client made of it.
async fn exchange(
    status: usize,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> Result<ibkr_oauth::Token, Error> {
    let mut server = Server::new_async().await;
    let mut mock = server.mock("POST", PATH).with_status(status);
    for (name, value) in headers {
        mock = mock.with_header(*name, value);
    }
    let mock = mock.with_body(body).expect(1).create_async().await;
    let result = client(&server).request_token(&request()).await;
    mock.assert_async().await;
    result
}

const PROBLEM: (&str, &str) = ("content-type", "application/problem+json");
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn success_sends_the_form_and_builds_the_token() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("accept", "application/json, application/problem+json")
        .match_header("user-agent", DEFAULT_USER_AGENT)
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("grant_type".into(), "client_credentials".into()),
            Matcher::UrlEncoded("client_assertion".into(), ASSERTION.into()),
            Matcher::UrlEncoded(
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            Matcher::UrlEncoded("scope".into(), "echo.read echo.write".into()),
        ]))
        .with_header("content-type", "application/json")
        .with_header("date", "Tue, 14 Nov 2023 22:13:25 GMT")
        .with_body(
            json!({
                "access_token": ACCESS_TOKEN,
                "token_type": "Bearer",
                "scope": "echo.read echo.write",
                "expires_in": 86399
            })
            .to_string(),
        )
        .expect(1)
        .create_async()
        .await;

    let token = client(&server).request_token(&request()).await.unwrap();
    mock.assert_async().await;
    assert_eq!(token.access_token().expose_secret(), ACCESS_TOKEN);
    assert_eq!(token.token_type(), Some("Bearer"));
    assert_eq!(
        token.scopes().collect::<Vec<_>>(),
        ["echo.read", "echo.write"]
    );
    assert_eq!(token.expires_in(), Duration::from_secs(86399));
    assert_eq!(token.received_at(), pinned_now());
    assert_eq!(
        token.expires_at(),
        pinned_now() + Duration::from_secs(86399)
    );
    assert_eq!(
        token.server_date(),
        Some(pinned_now() + Duration::from_secs(5))
    );
}

#[tokio::test]
async fn json_with_parameters_is_json() {
    let body = json!({"access_token": "t", "expires_in": 60}).to_string();
    let token = exchange(
        200,
        &[("content-type", "application/json; charset=utf-8")],
        body,
    )
    .await
    .unwrap();
    assert_eq!(token.expires_in(), Duration::from_secs(60));
}

#[tokio::test]
async fn missing_expires_in_gives_a_zero_lifetime() {
    let token = exchange(200, &[JSON], r#"{"access_token":"t"}"#)
        .await
        .unwrap();
    assert_eq!(token.expires_in(), Duration::ZERO);
    assert!(!token.expires_in_reported());
    assert_eq!(token.expires_at(), pinned_now());
}

#[tokio::test]
async fn ibkr_400_example_is_a_problem() {
    let body = r#"{"type": "/simple", "title": "Bad Request", "status": 400}"#;
    match exchange(400, &[PROBLEM], body).await {
        Err(
            ref e @ Error::Problem {
                ref problem,
                ref response,
            },
        ) => {
            assert_eq!(response.status, StatusCode::BAD_REQUEST);
            assert_eq!(problem.http_status(), StatusCode::BAD_REQUEST);
            assert_eq!(problem.problem_type(), "/simple");
            assert_eq!(problem.title(), Some("Bad Request"));
            assert_eq!(problem.status(), Some(400));
            assert_eq!(problem.detail(), None);
            assert!(problem.extensions().is_empty());
            assert!(!e.is_retryable());
            assert_eq!(
                e.to_string(),
                "token request rejected (400 Bad Request): Bad Request [type /simple]"
            );
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn ibkr_500_example_is_a_500_problem_not_a_400() {
    // The generated untagged enum would call this `Status400`: the real status decides.
    let body = r#"{"type": "/simple", "title": "Internal Server Error", "status": 500}"#;
    match exchange(500, &[PROBLEM], body).await {
        Err(
            ref e @ Error::Problem {
                ref problem,
                ref response,
            },
        ) => {
            assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(problem.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(problem.status(), Some(500));
            assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
            assert!(e.is_retryable());
            assert_eq!(
                e.to_string(),
                "token endpoint failed (500 Internal Server Error): Internal Server Error \
                 [type /simple]; retry later"
            );
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn problem_display_is_one_actionable_line() {
    let body = json!({
        "type": "/simple",
        "title": "invalid client assertion",
        "status": 400,
        "detail": "signature does not verify"
    })
    .to_string();
    let e = exchange(400, &[PROBLEM], body).await.unwrap_err();
    assert!(matches!(e, Error::Problem { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "token request rejected (400 Bad Request): invalid client assertion: signature does \
         not verify [type /simple]"
    );
}

#[tokio::test]
async fn problem_keeps_extension_members() {
    let body = json!({
        "type": "https://example.com/probs/out-of-credit",
        "title": "You do not have enough credit.",
        "status": 403,
        "detail": "Your current balance is 30, but that costs 50.",
        "instance": "/account/12345/msgs/abc",
        "balance": 30,
        "accounts": ["/account/12345", "/account/67890"]
    })
    .to_string();
    match exchange(403, &[PROBLEM], body).await {
        Err(Error::Problem { problem, .. }) => {
            assert_eq!(
                problem.problem_type(),
                "https://example.com/probs/out-of-credit"
            );
            assert_eq!(problem.instance(), Some("/account/12345/msgs/abc"));
            assert_eq!(problem.extension("balance"), Some(&json!(30)));
            assert_eq!(
                problem.extension("accounts"),
                Some(&json!(["/account/12345", "/account/67890"]))
            );
            assert_eq!(problem.extensions().len(), 2);
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn problem_members_of_the_wrong_type_are_ignored() {
    let body = json!({
        "type": 42,
        "title": ["not", "a", "string"],
        "status": "400",
        "detail": {"nested": true},
        "instance": false,
        "code": "E1"
    })
    .to_string();
    match exchange(400, &[PROBLEM], body).await {
        Err(ref e @ Error::Problem { ref problem, .. }) => {
            assert_eq!(problem.problem_type(), "about:blank");
            assert_eq!(problem.title(), None);
            assert_eq!(problem.status(), None);
            assert_eq!(problem.detail(), None);
            assert_eq!(problem.instance(), None);
            assert_eq!(problem.extension("code"), Some(&json!("E1")));
            assert_eq!(problem.extensions().len(), 1);
            assert_eq!(
                e.to_string(),
                "token request rejected (400 Bad Request): no title or detail given"
            );
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn body_status_is_kept_beside_the_http_status() {
    let body = r#"{"title":"Bad Request","status":400}"#;
    match exchange(502, &[PROBLEM], body).await {
        Err(ref e @ Error::Problem { ref problem, .. }) => {
            assert_eq!(problem.http_status(), StatusCode::BAD_GATEWAY);
            assert_eq!(problem.status(), Some(400));
            assert!(e.is_retryable());
            assert!(e.to_string().contains("[body status 400]"), "{e}");
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_json_error_body_is_a_problem() {
    let body = r#"{"title":"Unauthorized","detail":"unknown client"}"#;
    let e = exchange(401, &[JSON], body).await.unwrap_err();
    match &e {
        Error::Problem { problem, .. } => assert_eq!(problem.detail(), Some("unknown client")),
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[tokio::test]
async fn rfc6749_error_body_is_oauth() {
    let body = json!({
        "error": "invalid_client",
        "error_description": "Client authentication failed",
        "error_uri": "https://example.com/errors/invalid_client"
    })
    .to_string();
    match exchange(401, &[JSON], body).await {
        Err(
            ref e @ Error::OAuth {
                ref error,
                ref response,
            },
        ) => {
            assert_eq!(response.status, StatusCode::UNAUTHORIZED);
            assert_eq!(error.error(), "invalid_client");
            assert_eq!(error.description(), Some("Client authentication failed"));
            assert_eq!(
                error.uri(),
                Some("https://example.com/errors/invalid_client")
            );
            assert!(!e.is_retryable());
            assert_eq!(
                e.to_string(),
                "token request rejected (401 Unauthorized): invalid_client: Client \
                 authentication failed (see https://example.com/errors/invalid_client); check \
                 the client id, the key id and the signing key"
            );
        }
        other => panic!("expected Error::OAuth, got {other:?}"),
    }
}

#[tokio::test]
async fn html_502_page_is_an_unexpected_response_with_an_excerpt() {
    let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                </body>\r\n</html>\r\n";
    match exchange(502, &[("content-type", "text/html")], body).await {
        Err(
            ref e @ Error::UnexpectedResponse {
                ref excerpt,
                ref location,
                ref response,
            },
        ) => {
            assert_eq!(response.status, StatusCode::BAD_GATEWAY);
            assert_eq!(response.content_type.as_deref(), Some("text/html"));
            assert_eq!(
                excerpt.as_deref(),
                Some("502 Bad Gateway 502 Bad Gateway nginx")
            );
            assert_eq!(location, &None);
            assert!(e.is_retryable());
            assert_eq!(
                e.to_string(),
                "unexpected response from the token endpoint (502 Bad Gateway, text/html): \
                 \"502 Bad Gateway 502 Bad Gateway nginx\"; check the base URL, or retry later"
            );
        }
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn problem_content_type_with_a_non_json_body_is_unexpected() {
    let e = exchange(400, &[PROBLEM], "oops").await.unwrap_err();
    match e {
        Error::UnexpectedResponse { excerpt, .. } => assert_eq!(excerpt.as_deref(), Some("oops")),
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn redirect_is_not_followed_and_the_assertion_is_not_resent() {
    let mut target = Server::new_async().await;
    let elsewhere = target
        .mock("POST", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let elsewhere_get = target
        .mock("GET", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let location = format!("{}{PATH}", target.url());

    let mut server = Server::new_async().await;
    let redirect = server
        .mock("POST", PATH)
        .with_status(307)
        .with_header("location", &location)
        .expect(1)
        .create_async()
        .await;

    let e = client(&server).request_token(&request()).await.unwrap_err();
    redirect.assert_async().await;
    elsewhere.assert_async().await;
    elsewhere_get.assert_async().await;
    match &e {
        Error::UnexpectedResponse {
            location: Some(l),
            response,
            ..
        } => {
            assert_eq!(response.status, StatusCode::TEMPORARY_REDIRECT);
            assert_eq!(&**l, location.as_str());
        }
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("redirects are not followed"), "{e}");
}

#[tokio::test]
async fn success_without_json_is_unexpected_and_not_quoted() {
    let e = exchange(200, &[("content-type", "text/plain")], "opaque-token-value")
        .await
        .unwrap_err();
    match &e {
        Error::UnexpectedResponse {
            excerpt, response, ..
        } => {
            assert_eq!(excerpt, &None);
            assert_eq!(response.status, StatusCode::OK);
        }
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
    assert!(!e.is_retryable());
}

async fn invalid_response(body: &str) -> String {
    match exchange(200, &[JSON], body).await {
        Err(ref e @ Error::InvalidResponse { ref reason, .. }) => {
            assert!(!e.is_retryable());
            reason.to_string()
        }
        other => panic!("expected Error::InvalidResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn success_without_access_token_is_invalid() {
    let reason = invalid_response(r#"{"token_type":"Bearer","expires_in":3600}"#).await;
    assert!(reason.contains("no `access_token`"), "{reason}");
}

#[tokio::test]
async fn success_with_empty_access_token_is_invalid() {
    let reason = invalid_response(r#"{"access_token":"","expires_in":3600}"#).await;
    assert!(reason.contains("empty"), "{reason}");
}

#[tokio::test]
async fn success_with_negative_expires_in_is_invalid() {
    let reason = invalid_response(r#"{"access_token":"t","expires_in":-1}"#).await;
    assert!(reason.contains("negative"), "{reason}");
}

#[tokio::test]
async fn success_with_wrong_types_or_bad_json_is_invalid() {
    invalid_response(r#"{"access_token":"t","expires_in":"3600"}"#).await;
    invalid_response(r#"{"access_token":7}"#).await;
    invalid_response(r#"{"access_token":"t""#).await;
    invalid_response(r#"["t"]"#).await;
    invalid_response("").await;
}

#[tokio::test]
async fn success_with_a_problem_document_is_invalid() {
    let e = exchange(200, &[PROBLEM], r#"{"title":"odd"}"#)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
}

#[tokio::test]
async fn retry_after_in_seconds() {
    let e = exchange(
        429,
        &[PROBLEM, ("retry-after", "120")],
        r#"{"title":"Too Many Requests","status":429}"#,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Problem { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(e.to_string().ends_with("; retry in 120 s"), "{e}");
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_relative_to_the_response_date() {
    let e = exchange(
        503,
        &[
            ("content-type", "text/plain"),
            ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("retry-after", "Wed, 21 Oct 2015 07:30:30 GMT"),
        ],
        "maintenance",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(150)));
    assert_eq!(
        e.server_date(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480))
    );
}

#[tokio::test]
async fn unparsable_retry_after_is_none() {
    let e = exchange(503, &[PROBLEM, ("retry-after", "soon")], "{}")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Problem { .. }), "{e:?}");
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn request_timeout_and_other_4xx_retryability() {
    let e = exchange(408, &[PROBLEM], "{}").await.unwrap_err();
    assert!(e.is_retryable());
    let e = exchange(403, &[PROBLEM], "{}").await.unwrap_err();
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn body_at_the_cap_is_read_and_one_byte_over_is_refused() {
    let cap = 1024;
    let json = r#"{"access_token":"t","expires_in":60}"#;
    let at_cap = format!("{json}{}", " ".repeat(cap - json.len()));
    let over = format!("{at_cap} ");
    for (body, ok) in [(at_cap, true), (over, false)] {
        let mut server = Server::new_async().await;
        server
            .mock("POST", PATH)
            .with_header("content-type", "application/json")
            .with_body(body)
            .create_async()
            .await;
        let client = TokenClient::builder()
            .base_url(server.url())
            .max_response_bytes(cap)
            .build()
            .unwrap();
        match client.request_token(&request()).await {
            Ok(_) if ok => {}
            Err(Error::ResponseTooLarge { limit, response }) if !ok => {
                assert_eq!(limit, cap);
                assert_eq!(response.status, StatusCode::OK);
            }
            other => panic!("cap {cap}, expected ok={ok}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn streamed_body_over_the_cap_is_refused_without_reading_it_whole() {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 64 * 1024 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let mut server = Server::new_async().await;
    server
        .mock("POST", PATH)
        .with_status(500)
        .with_header("content-type", "text/html")
        .with_chunked_body(move |w| {
            let chunk = [b'x'; CHUNK];
            while counter.load(Ordering::SeqCst) < TOTAL {
                w.write_all(&chunk)?;
                counter.fetch_add(CHUNK, Ordering::SeqCst);
            }
            Ok(())
        })
        .create_async()
        .await;

    let e = client(&server).request_token(&request()).await.unwrap_err();
    match &e {
        Error::ResponseTooLarge { limit, response } => {
            assert_eq!(*limit, ibkr_oauth::constants::DEFAULT_MAX_RESPONSE_BYTES);
            assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
        }
        other => panic!("expected Error::ResponseTooLarge, got {other:?}"),
    }
    assert!(e.is_retryable());
    drop(server);
    // The client hung up long before the server could write all 64 MiB.
    assert!(written.load(Ordering::SeqCst) < TOTAL / 2);
}

#[tokio::test]
async fn declared_length_over_the_cap_is_refused() {
    let e = exchange(200, &[JSON], vec![b' '; 100 * 1024])
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ResponseTooLarge { limit: 65536, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn stalled_server_hits_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, reads the request, never answers; holds the connection until the test ends.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            held.push(socket);
        }
    });
    let client = TokenClient::builder()
        .base_url(format!("http://{addr}"))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = client.request_token(&request()).await.unwrap_err();
    server.abort();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.status(), None);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let client = TokenClient::builder()
        .base_url(closed_port_url())
        .build()
        .unwrap();
    let e = client.request_token(&request()).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("could not connect"), "{e}");
}

#[tokio::test]
async fn the_client_is_send_sync_clone_and_its_future_is_send() {
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let client = TokenClient::builder().build().unwrap();
    assert_send_sync(&client);
    let request = request();
    assert_send(client.request_token(&request));
}
