//! Conformance of the generated operations (`generate_token` and the two echo operations)
//! against a mock server.
//!
//! These tests pin down what the generated code really does on the wire and with each response,
//! including where it falls short of the spec, so that the facade can rely on (and correct) it.

use ibkr_oauth_generated::apis::Error;
use ibkr_oauth_generated::apis::authorization_token_api::{GenerateTokenError, generate_token};
use ibkr_oauth_generated::apis::configuration::Configuration;
use ibkr_oauth_generated::apis::utilities_echo_api::{
    GwApiV1EchoHttpsGetError, gw_api_v1_echo_https_get, gw_api_v1_echo_signed_jwt_post,
};
use ibkr_oauth_generated::models::echo_response::{RequestMethod, SecurityPolicy};
use ibkr_oauth_generated::models::{SignedJwtEchoRequest, TokenResponse};
use mockito::{Matcher, Server};

const PATH: &str = "/oauth2/api/v1/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
// Characters that form encoding must escape: `+`, `/`, `=` (base64 padding and alphabet).
const ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhIn0+/=.c2ln+/==";

fn config(server: &Server) -> Configuration {
    Configuration {
        base_path: server.url(),
        ..Configuration::default()
    }
}

/// Calls the generated operation against `server` with the fixed test parameters.
async fn send(
    server: &Server,
    scope: Option<&str>,
) -> Result<TokenResponse, Error<GenerateTokenError>> {
    generate_token(
        &config(server),
        "client_credentials",
        ASSERTION,
        ASSERTION_TYPE,
        scope,
    )
    .await
}

fn form(request: &mockito::Request) -> Vec<(String, String)> {
    let body = request.body().cloned().unwrap_or_default();
    url::form_urlencoded::parse(&body).into_owned().collect()
}

#[tokio::test]
async fn sends_a_url_encoded_form_post_to_the_token_path() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("grant_type".into(), "client_credentials".into()),
            Matcher::UrlEncoded("client_assertion".into(), ASSERTION.into()),
            Matcher::UrlEncoded("client_assertion_type".into(), ASSERTION_TYPE.into()),
            Matcher::UrlEncoded("scope".into(), "echo.read echo.write".into()),
        ]))
        // The raw body must carry the escaped forms, not the literal characters.
        .match_request(|request| {
            let raw = request.utf8_lossy_body().unwrap_or_default().into_owned();
            raw.contains("client_assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhIn0%2B%2F%3D.c2ln%2B%2F%3D%3D")
                && raw.contains("scope=echo.read+echo.write")
        })
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"t","token_type":"Bearer","scope":"echo.read echo.write","expires_in":86399}"#)
        .create_async()
        .await;

    let response = send(&server, Some("echo.read echo.write"))
        .await
        .expect("200 parses");
    mock.assert_async().await;
    assert_eq!(response.token_type.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn omits_scope_when_absent() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .match_request(|request| {
            let fields = form(request);
            fields.len() == 3 && fields.iter().all(|(name, _)| name != "scope")
        })
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"t"}"#)
        .create_async()
        .await;

    send(&server, None).await.expect("200 parses");
    mock.assert_async().await;
}

/// The spec says `Accept: application/json, application/problem+json`; the generated operation
/// sets no `Accept` of its own, so reqwest's default `*/*` goes out. The facade must set it.
#[tokio::test]
async fn generated_operation_sends_only_reqwests_default_accept() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .match_header("accept", "*/*")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body("{}")
        .create_async()
        .await;
    send(&server, None).await.expect("200 parses");
    mock.assert_async().await;
}

#[tokio::test]
async fn parses_ibkr_token_response() {
    let mut server = Server::new_async().await;
    let _mock = server
        .mock("POST", PATH)
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"eyJ.a.b","token_type":"Bearer","scope":"echo.read echo.write","expires_in":86399}"#)
        .create_async()
        .await;
    let response = send(&server, None).await.expect("200 parses");
    assert_eq!(response.access_token.as_deref(), Some("eyJ.a.b"));
    assert_eq!(response.token_type.as_deref(), Some("Bearer"));
    assert_eq!(response.scope.as_deref(), Some("echo.read echo.write"));
    assert_eq!(response.expires_in, Some(86399));
}

async fn problem_response(status: usize, body: &str) -> Error<GenerateTokenError> {
    let mut server = Server::new_async().await;
    let _mock = server
        .mock("POST", PATH)
        .with_status(status)
        .with_header("content-type", "application/problem+json")
        .with_body(body)
        .create_async()
        .await;
    send(&server, None)
        .await
        .expect_err("a problem is an error")
}

#[tokio::test]
async fn a_400_problem_reaches_the_caller_with_its_status() {
    let error = problem_response(
        400,
        r#"{"type":"/simple","title":"Bad Request","status":400}"#,
    )
    .await;
    let Error::ResponseError(content) = error else {
        panic!("expected ResponseError, got {error:?}");
    };
    assert_eq!(content.status.as_u16(), 400);
    let Some(GenerateTokenError::Status400(problem)) = content.entity else {
        panic!("expected Status400 entity, got {:?}", content.entity);
    };
    assert_eq!(problem.r#type.as_deref(), Some("/simple"));
    assert_eq!(problem.title.as_deref(), Some("Bad Request"));
    assert_eq!(problem.status, Some(400));
}

/// Known generator quirk: `GenerateTokenError` is `#[serde(untagged)]` and both variants hold the
/// same model, so a 500 problem deserialises as `Status400`. The status on the response is right;
/// the facade maps by that status, never by the entity's variant.
#[tokio::test]
async fn a_500_problem_keeps_status_500_but_lands_in_the_400_variant() {
    let error = problem_response(
        500,
        r#"{"type":"/simple","title":"Internal Server Error","status":500}"#,
    )
    .await;
    let Error::ResponseError(content) = error else {
        panic!("expected ResponseError, got {error:?}");
    };
    assert_eq!(content.status.as_u16(), 500);
    let Some(GenerateTokenError::Status400(problem)) = content.entity else {
        panic!(
            "expected the (mislabelled) Status400 entity, got {:?}",
            content.entity
        );
    };
    assert_eq!(problem.status, Some(500));
    assert_eq!(problem.title.as_deref(), Some("Internal Server Error"));
}

/// A problem member of the wrong JSON type makes the whole generated entity fail to parse (it
/// falls back to `UnknownValue`); RFC 9457 says such a member is to be ignored, which the facade
/// does with its own parser over `content`.
#[tokio::test]
async fn a_wrong_typed_member_degrades_the_generated_entity_to_unknown_value() {
    let error = problem_response(
        400,
        r#"{"type":"/simple","title":"Bad Request","status":"400"}"#,
    )
    .await;
    let Error::ResponseError(content) = error else {
        panic!("expected ResponseError, got {error:?}");
    };
    assert!(
        matches!(content.entity, Some(GenerateTokenError::UnknownValue(_))),
        "got {:?}",
        content.entity
    );
    assert!(content.content.contains("Bad Request"));
}

/// A 2xx that is not JSON is reported as a serde error (its body is not kept).
#[tokio::test]
async fn a_non_json_success_is_a_serde_error() {
    let mut server = Server::new_async().await;
    let _mock = server
        .mock("POST", PATH)
        .with_status(200)
        .with_header("content-type", "text/html")
        .with_body("<html>hi</html>")
        .create_async()
        .await;
    let error = send(&server, None).await.expect_err("html is not a token");
    assert!(matches!(error, Error::Serde(_)), "got {error:?}");
}

// The echo operations: `GET /gw/api/v1/echo/https` and `POST /gw/api/v1/echo/signed-jwt`.

const ECHO_HTTPS: &str = "/gw/api/v1/echo/https";
const ECHO_SIGNED_JWT: &str = "/gw/api/v1/echo/signed-jwt";
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjIn0.c2ln";

fn config_with_token(server: &Server) -> Configuration {
    Configuration {
        oauth_access_token: Some(BEARER.to_owned()),
        ..config(server)
    }
}

const ECHO_OK: &str = r#"{"requestMethod":"GET","securityPolicy":"HTTPS","queryParameters":{}}"#;

/// GET, the echo path, the token as `Authorization: Bearer` (from `oauth_access_token`, the
/// spec's `oauth2` scheme), no body and no content type.
#[tokio::test]
async fn echo_https_is_a_bare_get_with_the_bearer_token() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("GET", ECHO_HTTPS)
        .match_header("authorization", format!("Bearer {BEARER}").as_str())
        .match_header("content-type", Matcher::Missing)
        .match_body("")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(ECHO_OK)
        .create_async()
        .await;
    let echo = gw_api_v1_echo_https_get(&config_with_token(&server))
        .await
        .expect("200 parses");
    mock.assert_async().await;
    assert_eq!(echo.request_method, RequestMethod::Get);
    assert_eq!(echo.security_policy, SecurityPolicy::Https);
    assert_eq!(echo.query_parameters, Some(serde_json::json!({})));
}

/// Without a token in the configuration no `Authorization` header goes out at all.
#[tokio::test]
async fn echo_https_without_a_configured_token_sends_no_authorization() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("GET", ECHO_HTTPS)
        .match_header("authorization", Matcher::Missing)
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(ECHO_OK)
        .create_async()
        .await;
    gw_api_v1_echo_https_get(&config(&server))
        .await
        .expect("200 parses");
    mock.assert_async().await;
}

/// The spec's body is `application/jwt` (a compact JWS whose payload is the
/// `SignedJwtEchoRequest`); the generated operation serializes the model as JSON and sends
/// `application/json`. The Signed JWT security policy needs the body signed before it goes
/// out (through the generated crate's middleware), or IBKR refuses it.
#[tokio::test]
async fn echo_signed_jwt_posts_the_model_as_json_not_as_a_jws() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", ECHO_SIGNED_JWT)
        .match_header("authorization", format!("Bearer {BEARER}").as_str())
        .match_header("content-type", "application/json")
        .match_body(Matcher::Exact(r#"{"iss":"my-client"}"#.to_owned()))
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(r#"{"requestMethod":"POST","securityPolicy":"SIGNED_JWT","queryParameters":{}}"#)
        .create_async()
        .await;
    let request = SignedJwtEchoRequest {
        iss: Some("my-client".to_owned()),
    };
    let echo = gw_api_v1_echo_signed_jwt_post(&config_with_token(&server), request)
        .await
        .expect("200 parses");
    mock.assert_async().await;
    assert_eq!(echo.request_method, RequestMethod::Post);
    assert_eq!(echo.security_policy, SecurityPolicy::SignedJwt);
}

/// The three problem models share one shape and the error enum is `#[serde(untagged)]`: a 403
/// (`InsufficientScopeResponse`) lands in the `Status401` variant. Decide by the status.
#[tokio::test]
async fn an_echo_403_keeps_its_status_but_lands_in_the_401_variant() {
    let mut server = Server::new_async().await;
    let _mock = server
        .mock("GET", ECHO_HTTPS)
        .with_status(403)
        .with_header("content-type", "application/problem+json")
        .with_header("www-authenticate", r#"Bearer error="insufficient_scope""#)
        .with_body(r#"{"type":"/simple","title":"Forbidden","status":403,"detail":"scope"}"#)
        .create_async()
        .await;
    let error = gw_api_v1_echo_https_get(&config_with_token(&server))
        .await
        .expect_err("a 403 is an error");
    let Error::ResponseError(content) = error else {
        panic!("expected ResponseError, got {error:?}");
    };
    assert_eq!(content.status.as_u16(), 403);
    let Some(GwApiV1EchoHttpsGetError::Status401(problem)) = content.entity else {
        panic!(
            "expected the (mislabelled) Status401 entity, got {:?}",
            content.entity
        );
    };
    assert_eq!((problem.status, problem.title.as_str()), (403, "Forbidden"));
}
