//! Issue 20, item 5: the bearer middleware's 401 recovery with a streamed (non-cloneable)
//! body, and a 401 from another origin reached through a redirect.
#![cfg(feature = "middleware")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ibkr_oauth::middleware::BearerAuth;
use ibkr_oauth::{Error, SecretString, Token, TokenSource};

/// Hands out `t1`, `t2`... (a new one after each report), and counts the reports.
#[derive(Debug, Default)]
struct Tokens {
    current: AtomicU32,
    reported: AtomicU32,
}

#[async_trait::async_trait]
impl TokenSource for Tokens {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        let n = self.current.load(Ordering::SeqCst) + 1;
        Ok(Arc::new(
            Token::builder(SecretString::from(format!("t{n}")))
                .build()
                .expect("a token"),
        ))
    }

    async fn invalidate(&self, _token: &Token) -> bool {
        self.reported.fetch_add(1, Ordering::SeqCst);
        self.current.fetch_add(1, Ordering::SeqCst);
        true
    }
}

fn api(source: Arc<Tokens>, base: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::from_arc(source, base).expect("a loopback base URL"))
        .build()
}

#[tokio::test]
async fn a_401_on_a_streamed_body_reaches_the_caller_without_a_resend() {
    let mut server = mockito::Server::new_async().await;
    let refused = server
        .mock("POST", "/v1/api/orders")
        .match_header("authorization", "Bearer t1")
        .match_body("streamed payload")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Tokens::default());
    let api = api(Arc::clone(&source), &server.url());

    let body = reqwest::Body::wrap(String::from("streamed payload"));
    let response = api
        .post(format!("{}/v1/api/orders", server.url()))
        .body(body)
        .send()
        .await
        .expect("the 401 itself, not an error or a panic");
    assert_eq!(response.status(), 401);
    // Sent once: a streamed body cannot be sent again (no empty resend); the token was
    // reported, so the caller's next request carries a new one.
    refused.assert_async().await;
    assert_eq!(source.reported.load(Ordering::SeqCst), 1);
    let next = server
        .mock("GET", "/v1/api/accounts")
        .match_header("authorization", "Bearer t2")
        .with_status(200)
        .create_async()
        .await;
    let answer = api
        .get(format!("{}/v1/api/accounts", server.url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    next.assert_async().await;
}

#[tokio::test]
async fn a_401_from_another_origin_after_a_redirect_keeps_the_token() {
    let mut elsewhere = mockito::Server::new_async().await;
    let other = elsewhere
        .mock("GET", "/login")
        .match_header("authorization", mockito::Matcher::Missing)
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let mut api_host = mockito::Server::new_async().await;
    let redirect = api_host
        .mock("GET", "/v1/api/portal")
        .match_header("authorization", "Bearer t1")
        .with_status(302)
        .with_header("location", &format!("{}/login", elsewhere.url()))
        .expect(1)
        .create_async()
        .await;
    let source = Arc::new(Tokens::default());
    // reqwest's default policy follows the redirect (dropping Authorization across origins).
    let api = api(Arc::clone(&source), &api_host.url());
    let response = api
        .get(format!("{}/v1/api/portal", api_host.url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 401, "{}", response.url());
    redirect.assert_async().await;
    other.assert_async().await;
    assert_eq!(
        source.reported.load(Ordering::SeqCst),
        0,
        "another origin's 401 says nothing of the API token"
    );
}
