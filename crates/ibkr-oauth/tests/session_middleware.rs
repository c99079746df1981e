//! The bearer middleware's session mode ([`SessionAuth`]) against mockito: `/v1/api` calls
//! carry the SSO token; a 401 re-opens once, a `400 no bridge` opens the brokerage session
//! once; other paths and origins never get the token.
#![cfg(feature = "middleware")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::session::{SessionSource, SsoToken};
use ibkr_oauth::{Error, ErrorKind, SecretString};
use mockito::Server;

/// Hands out "sso-1", then "sso-2" after a refusal; counts brokerage opens.
#[derive(Debug, Default)]
struct Rotating {
    generation: AtomicUsize,
    invalidated: AtomicUsize,
    brokerage: AtomicUsize,
    brokerage_fails: bool,
}

#[async_trait::async_trait]
impl SessionSource for Rotating {
    async fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        let n = self.generation.load(Ordering::SeqCst) + 1;
        Ok(Arc::new(SsoToken::new(SecretString::from(format!(
            "sso-{n}"
        )))))
    }

    async fn invalidate(&self, _token: &SsoToken) -> bool {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        true
    }

    async fn open_brokerage(&self) -> Result<(), Error> {
        self.brokerage.fetch_add(1, Ordering::SeqCst);
        if self.brokerage_fails {
            return Err(Error::custom(ErrorKind::Session, "no bridge", None));
        }
        Ok(())
    }
}

fn client(source: Arc<Rotating>, base: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SessionAuth::from_arc(source, base).unwrap())
        .build()
}

#[tokio::test]
async fn v1_api_calls_carry_the_sso_token() {
    let mut server = Server::new_async().await;
    let ok = server
        .mock("GET", "/v1/api/portfolio/accounts")
        .match_header("authorization", "Bearer sso-1")
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/portfolio/accounts", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    ok.assert_async().await;
}

#[tokio::test]
async fn a_401_opens_a_new_session_and_retries_once() {
    let mut server = Server::new_async().await;
    let refused = server
        .mock("GET", "/v1/api/portfolio/accounts")
        .match_header("authorization", "Bearer sso-1")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let ok = server
        .mock("GET", "/v1/api/portfolio/accounts")
        .match_header("authorization", "Bearer sso-2")
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/portfolio/accounts", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    refused.assert_async().await;
    ok.assert_async().await;
    assert_eq!(source.invalidated.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_second_401_goes_to_the_caller() {
    let mut server = Server::new_async().await;
    let refused = server
        .mock("GET", "/v1/api/portfolio/accounts")
        .with_status(401)
        .expect(2)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/portfolio/accounts", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    refused.assert_async().await;
}

#[tokio::test]
async fn no_bridge_opens_the_brokerage_session_and_retries_once() {
    let mut server = Server::new_async().await;
    let no_bridge = server
        .mock("GET", "/v1/api/iserver/accounts")
        .with_status(400)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":"no bridge","statusCode":400}"#)
        .expect(1)
        .create_async()
        .await;
    let ok = server
        .mock("GET", "/v1/api/iserver/accounts")
        .with_body(r#"{"accounts":["U1"]}"#)
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/iserver/accounts", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"accounts":["U1"]}"#);
    no_bridge.assert_async().await;
    ok.assert_async().await;
    assert_eq!(source.brokerage.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn no_bridge_that_cannot_be_opened_goes_to_the_caller_with_its_body() {
    let mut server = Server::new_async().await;
    let no_bridge = server
        .mock("GET", "/v1/api/iserver/accounts")
        .with_status(400)
        .with_body("Bad Request: no bridge")
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating {
        brokerage_fails: true,
        ..Rotating::default()
    });
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/iserver/accounts", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "Bad Request: no bridge");
    no_bridge.assert_async().await;
}

#[tokio::test]
async fn another_400_is_passed_on_untouched() {
    let mut server = Server::new_async().await;
    server
        .mock("GET", "/v1/api/iserver/contract/1/info")
        .with_status(400)
        .with_body(r#"{"error":"bad conid"}"#)
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(Arc::clone(&source), &server.url());
    let response = api
        .get(format!("{}/v1/api/iserver/contract/1/info", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), r#"{"error":"bad conid"}"#);
    assert_eq!(source.brokerage.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn other_paths_and_origins_never_get_the_sso_token() {
    let mut server = Server::new_async().await;
    let bare = server
        .mock("GET", "/gw/api/v1/echo/https")
        .match_header("authorization", mockito::Matcher::Missing)
        .expect(1)
        .create_async()
        .await;
    let lookalike = server
        .mock("GET", "/v1/apix/accounts")
        .match_header("authorization", mockito::Matcher::Missing)
        .expect(1)
        .create_async()
        .await;
    let mut other = Server::new_async().await;
    let elsewhere = other
        .mock("GET", "/v1/api/portfolio/accounts")
        .match_header("authorization", mockito::Matcher::Missing)
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Rotating::default());
    let api = client(source, &server.url());
    for url in [
        format!("{}/gw/api/v1/echo/https", server.url()),
        format!("{}/v1/apix/accounts", server.url()),
        format!("{}/v1/api/portfolio/accounts", other.url()),
    ] {
        api.get(url).send().await.unwrap();
    }
    bare.assert_async().await;
    lookalike.assert_async().await;
    elsewhere.assert_async().await;
}

#[test]
fn plain_http_elsewhere_than_loopback_is_refused_and_debug_redacts() {
    let source = Arc::new(Rotating::default());
    assert!(matches!(
        SessionAuth::from_arc(source.clone(), "http://api.ibkr.com"),
        Err(ibkr_oauth::ConfigError::Client(_))
    ));
    let auth = SessionAuth::from_arc(source, "https://api.ibkr.com").unwrap();
    let debug = format!("{auth:?}");
    assert!(!debug.contains("sso-1"), "{debug}");
}

#[tokio::test]
async fn a_401_or_no_bridge_from_another_origin_after_a_redirect_keeps_the_session() {
    let mut elsewhere = Server::new_async().await;
    let login = elsewhere
        .mock("GET", "/login")
        .match_header("authorization", mockito::Matcher::Missing)
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let bridge = elsewhere
        .mock("GET", "/bridge")
        .with_status(400)
        .with_body(r#"{"error":"Bad Request: no bridge","statusCode":400}"#)
        .expect(1)
        .create_async()
        .await;
    let mut api_host = Server::new_async().await;
    for (path, to) in [
        ("/v1/api/portal", "/login"),
        ("/v1/api/iserver/x", "/bridge"),
    ] {
        api_host
            .mock("GET", path)
            .match_header("authorization", "Bearer sso-1")
            .with_status(302)
            .with_header("location", &format!("{}{to}", elsewhere.url()))
            .expect(1)
            .create_async()
            .await;
    }
    let source = Arc::new(Rotating::default());
    // reqwest's default policy follows the redirect (dropping Authorization across origins).
    let api = client(Arc::clone(&source), &api_host.url());
    for (path, status) in [("/v1/api/portal", 401), ("/v1/api/iserver/x", 400)] {
        let response = api
            .get(format!("{}{path}", api_host.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{}", response.url());
    }
    login.assert_async().await;
    bridge.assert_async().await;
    assert_eq!(source.invalidated.load(Ordering::SeqCst), 0);
    assert_eq!(source.brokerage.load(Ordering::SeqCst), 0);
}
