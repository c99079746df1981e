//! Using the token against the sandbox's echo endpoints (a protected resource): the bearer
//! middleware's 401 recovery, a second 401 to the caller, the token kept to the API's origin,
//! a user-side `TokenSource` mock, the Signed JWT body, and the blocking provider.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{CLIENT, Env};
use ibkr_oauth::api::ApiClient;
use ibkr_oauth::middleware::BearerAuth;
use ibkr_oauth::models::{EchoResponse, echo_response};
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{
    Algorithm, Error, ErrorKind, ExposeSecret, FixedToken, SecretString, Token, TokenSource,
};
use ibkr_oauth_sandbox::Endpoint;

const ECHO_SCOPES: [&str; 2] = ["echo.read", "echo.write"];

async fn env() -> Env {
    Env::start_with_scopes(Algorithm::ES256, &ECHO_SCOPES).await
}

fn provider(env: &Env) -> TokenProvider {
    TokenProvider::builder(env.client.clone(), env.signer())
        .scopes(ECHO_SCOPES)
        .build()
        .expect("provider")
}

fn api(env: &Env, source: impl TokenSource + 'static) -> ApiClient {
    ApiClient::builder(source)
        .base_url(env.sandbox.base_url())
        .build()
        .expect("api client")
}

fn count(env: &Env, endpoint: Endpoint) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .count()
}

#[tokio::test]
async fn the_echo_endpoint_answers_through_the_middleware() {
    let env = env().await;
    let echo: EchoResponse = api(&env, provider(&env)).echo_https().await.expect("echo");
    assert_eq!(echo.request_method, echo_response::RequestMethod::Get);
    assert_eq!(count(&env, Endpoint::Token), 1);
    assert_eq!(count(&env, Endpoint::EchoHttps), 1);
}

#[tokio::test]
async fn a_revoked_token_is_retried_once_with_a_new_token() {
    let env = env().await;
    let api = api(&env, provider(&env));
    api.echo_https().await.expect("first call");
    assert_eq!(env.sandbox.revoke_all_tokens(), 1);

    api.echo_https().await.expect("recovered after one 401");
    assert_eq!(count(&env, Endpoint::Token), 2, "one new token");
    let calls: Vec<_> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::EchoHttps)
        .map(|r| r.status())
        .collect();
    assert_eq!(calls, [Some(200), Some(401), Some(200)]);
}

#[tokio::test]
async fn a_second_401_reaches_the_caller() {
    let env = env().await;
    // A token the sandbox never minted: every call is refused, the fixed source cannot help.
    let stranger = Token::builder(SecretString::from("not-a-sandbox-token"))
        .build()
        .expect("token");
    let error = api(&env, FixedToken::new(stranger))
        .echo_https()
        .await
        .expect_err("refused");
    let Error::Api(refusal) = &error else {
        panic!("{error:?}");
    };
    let ibkr_oauth::api::ApiError {
        path,
        challenge,
        response,
        ..
    } = &**refusal;
    assert_eq!(*path, "/gw/api/v1/echo/https");
    assert_eq!(response.status.as_u16(), 401);
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.contains("invalid_token")),
        "{challenge:?}"
    );
    assert!(
        response.request_id.is_some(),
        "the request id is kept for support"
    );
    assert_eq!(error.kind(), ErrorKind::Refused);
    assert_eq!(count(&env, Endpoint::EchoHttps), 2, "one retry, not more");
}

/// A user-side mock: counts what the middleware asks of it.
#[derive(Debug)]
struct Counting {
    inner: TokenProvider,
    asked: AtomicU32,
    reported: AtomicU32,
}

#[async_trait::async_trait]
impl TokenSource for Counting {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.inner.access_token().await
    }

    async fn invalidate(&self, token: &Token) -> bool {
        self.reported.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate(token)
    }
}

#[tokio::test]
async fn a_user_side_token_source_drives_the_middleware() {
    let env = env().await;
    let source = Arc::new(Counting {
        inner: provider(&env),
        asked: AtomicU32::new(0),
        reported: AtomicU32::new(0),
    });
    let api = api(&env, Arc::clone(&source));
    api.echo_https().await.expect("call");
    env.sandbox.revoke_all_tokens();
    api.echo_https().await.expect("call after revocation");
    assert_eq!(
        source.asked.load(Ordering::SeqCst),
        3,
        "once, then twice around the 401"
    );
    assert_eq!(source.reported.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_token_never_goes_to_another_host() {
    let mut elsewhere = mockito::Server::new_async().await;
    let no_token = elsewhere
        .mock("GET", "/collect")
        .match_header("authorization", mockito::Matcher::Missing)
        .with_status(200)
        .expect(2)
        .create_async()
        .await;
    let mut api_host = mockito::Server::new_async().await;
    let redirect = api_host
        .mock("GET", "/v1/api/redirect")
        .match_header("authorization", "Bearer secret-token")
        .with_status(307)
        .with_header("location", &format!("{}/collect", elsewhere.url()))
        .create_async()
        .await;
    let token = Token::builder(SecretString::from("secret-token"))
        .build()
        .unwrap();
    // reqwest's default policy follows the redirect; the middleware is on the client.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(FixedToken::new(token), &api_host.url()).expect("loopback"))
        .build();
    // An absolute URL on another port (another origin).
    client
        .get(format!("{}/collect", elsewhere.url()))
        .send()
        .await
        .expect("sent");
    // A redirect from the API's origin to another.
    client
        .get(format!("{}/v1/api/redirect", api_host.url()))
        .send()
        .await
        .expect("followed");
    redirect.assert_async().await;
    no_token.assert_async().await;
}

#[tokio::test]
async fn plain_http_to_a_remote_api_is_refused() {
    let source = FixedToken::new(Token::builder(SecretString::from("t")).build().unwrap());
    let error = BearerAuth::new(source, "http://api.ibkr.com").expect_err("plain http");
    assert!(
        matches!(error, ibkr_oauth::ConfigError::Client(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_signed_jwt_echo_sends_a_body_signed_with_the_client_key() {
    let env = env().await;
    let echo = api(&env, provider(&env))
        .echo_signed_jwt(&env.signer())
        .await
        .expect("signed echo");
    assert_eq!(echo.request_method, echo_response::RequestMethod::Post);
    let call = env
        .sandbox
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::EchoSignedJwt)
        .expect("logged");
    assert_eq!(call.status(), Some(200));
    assert_eq!(call.content_type.as_deref(), Some("application/jwt"));
    let claims = call.signed_body_claims.expect("claims");
    assert_eq!(claims["iss"], CLIENT);
}

#[tokio::test]
async fn without_the_scope_the_api_says_so() {
    let env = env().await;
    let read_only = TokenProvider::builder(env.client.clone(), env.signer())
        .scope("echo.read")
        .build()
        .unwrap();
    let error = api(&env, read_only)
        .echo_signed_jwt(&env.signer())
        .await
        .expect_err("no echo.write");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert!(error.to_string().contains("scope"), "{error}");
}

#[test]
fn the_blocking_provider_hands_out_a_cached_token() {
    // The sandbox runs on this runtime's worker thread while the test thread blocks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let env = runtime.block_on(env());
    let provider = ibkr_oauth::blocking::TokenProvider::build(
        ibkr_oauth::provider::TokenProvider::builder(env.client.clone(), env.signer())
            .scope("echo.read"),
    )
    .expect("provider");
    let first = provider.access_token().expect("token");
    let second = provider.access_token().expect("cached");
    assert_eq!(
        first.access_token().expose_secret(),
        second.access_token().expose_secret()
    );
    assert_eq!(count(&env, Endpoint::Token), 1, "one fetch, then the cache");
    assert!(provider.invalidate(&second));
    let third = provider.access_token().expect("a new token");
    assert_ne!(
        third.access_token().expose_secret(),
        second.access_token().expose_secret()
    );
    assert_eq!(count(&env, Endpoint::Token), 2);
}

#[tokio::test]
async fn an_api_call_to_another_origin_is_an_error_naming_both_not_a_silent_401() {
    let env = env().await;
    // Built for IBKR's production server, pointed at the sandbox: before, every call went out
    // without the token and came back `401 authorization: missing`.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(provider(&env), ibkr_oauth::IBKR_PRODUCTION).expect("https"))
        .build();
    let error = client
        .get(format!("{}/gw/api/v1/echo/https", env.sandbox.base_url()))
        .send()
        .await
        .expect_err("a mismatch is an error");
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("the middleware's own error: {error:?}");
    };
    let error = error.downcast::<Error>().expect("an ibkr_oauth::Error");
    let sandbox_origin = env.sandbox.base_url().trim_end_matches('/').to_owned();
    assert!(
        matches!(
            &error,
            Error::Config(ibkr_oauth::ConfigError::OriginMismatch { request_origin, api_origin })
                if *request_origin == sandbox_origin && api_origin == "https://api.ibkr.com"
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Configuration);
    let message = error.to_string();
    assert!(message.contains(&sandbox_origin) && message.contains("https://api.ibkr.com"));
    assert_eq!(count(&env, Endpoint::EchoHttps), 0, "nothing was sent");
}
