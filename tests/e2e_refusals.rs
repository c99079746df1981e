//! End to end through the SDK (`TokenClient` + `TokenRequest` + `Signer`) against the sandbox on
//! loopback: every check the sandbox makes refuses its own bad request, and the SDK hands the
//! refusal back as exactly `Error::Problem` (400, type `/simple`) whose `detail` is the
//! sandbox's text for that check. Also: a granted token is one the sandbox issued, injected
//! server faults are retryable problems, and the SDK's own scope bounds refuse before any I/O.

mod common;

use std::time::Duration;

use common::{
    CLIENT, Env, FixedClock, KID, OTHER_SCOPE, SCOPE, claim_i64, claim_str, sandbox_time_in,
    unix_now, whole_second,
};
use ibkr_oauth::constants::{SCOPE_MAX_CHARS, SCOPE_MIN_CHARS};
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, Error, ExposeSecret, PrivateKey, Signer, StatusCode, TokenRequest};
use ibkr_oauth_sandbox::{
    ACCESS_TOKEN_ISSUER, DEFAULT_AUDIENCE, DEFAULT_EXPIRES_IN, DEFAULT_IAT_TOLERANCE, Fault,
    PROBLEM_CONTENT_TYPE, SCOPE_LENGTH,
};

/// A request signed fresh by `signer` for `scope`.
fn signed(signer: Signer, scope: &str) -> TokenRequest {
    TokenRequest::builder()
        .signer(signer)
        .scope(scope)
        .build()
        .expect("a valid request")
}

/// Sends `request`, which the sandbox must refuse, and returns the problem's `detail` after
/// checking everything but it: exactly `Error::Problem`, HTTP 400 with a 400 `/simple`
/// `Bad Request` body as `application/problem+json`, not retryable, no `Retry-After`, one
/// request received, and the same detail as the sandbox recorded for it.
async fn refused(env: &Env, request: &TokenRequest) -> String {
    let before = env.sandbox.request_count();
    let error = env
        .client
        .request_token(request)
        .await
        .expect_err("the sandbox refuses this request");
    assert!(!error.is_retryable(), "a refusal is final: {error}");
    assert_eq!(error.retry_after(), None, "{error}");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST), "{error}");
    let Error::Problem { problem, response } = &error else {
        panic!("expected Error::Problem, got {error:?}");
    };
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.content_type.as_deref(), Some(PROBLEM_CONTENT_TYPE));
    assert_eq!(problem.http_status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem.status(), Some(400));
    assert_eq!(problem.problem_type(), "/simple");
    assert_eq!(problem.title(), Some("Bad Request"));
    let detail = problem.detail().expect("a detail").to_owned();

    assert_eq!(
        env.sandbox.request_count(),
        before + 1,
        "one request, no retry"
    );
    let logged = env.sandbox.last_request().expect("the request is logged");
    assert_eq!(logged.status(), Some(400));
    assert_eq!(logged.detail(), Some(detail.as_str()));
    detail
}

async fn granted_token_verifies(algorithm: Algorithm) {
    let env = Env::start(algorithm).await;
    let request = TokenRequest::builder()
        .signer(env.signer())
        .scopes([SCOPE, OTHER_SCOPE])
        .build()
        .unwrap();

    let token = env.client.request_token(&request).await.unwrap();

    assert_eq!(token.token_type(), Some("Bearer"));
    assert_eq!(token.scope(), Some("sso-sessions.write echo.read"));
    assert_eq!(token.expires_in(), DEFAULT_EXPIRES_IN);
    let claims = env
        .sandbox
        .verify_access_token(token.access_token().expose_secret())
        .expect("the sandbox issued this token");
    assert_eq!(claims.iss, ACCESS_TOKEN_ISSUER);
    assert_eq!(claims.sub, CLIENT);
    assert_eq!(claims.client_id, CLIENT);
    assert_eq!(
        claims.scope.as_deref(),
        Some("sso-sessions.write echo.read")
    );
    assert_eq!(
        u64::try_from(claims.exp - claims.iat).unwrap(),
        DEFAULT_EXPIRES_IN.as_secs()
    );

    // What went on the wire: the signer's header and claims, the SDK's form.
    let logged = env.request(1);
    assert_eq!(logged.status(), Some(200));
    let header = logged.assertion_header.as_ref().unwrap();
    assert_eq!(header["alg"], algorithm.as_str());
    assert_eq!(header["kid"], KID);
    assert_eq!(claim_str(&logged, "iss"), CLIENT);
    assert_eq!(claim_str(&logged, "sub"), CLIENT);
    assert_eq!(claim_str(&logged, "aud"), DEFAULT_AUDIENCE);
    assert_eq!(
        logged.form.grant_type.as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        logged.form.scope.as_deref(),
        Some("sso-sessions.write echo.read")
    );
    assert_eq!(env.sandbox.tokens_issued(), 1);
}

#[tokio::test]
async fn an_eddsa_signed_request_gets_a_token_the_sandbox_verifies() {
    granted_token_verifies(Algorithm::EdDSA).await;
}

#[tokio::test]
async fn an_es256_signed_request_gets_a_token_the_sandbox_verifies() {
    granted_token_verifies(Algorithm::ES256).await;
}

#[tokio::test]
async fn an_rs256_signed_request_gets_a_token_the_sandbox_verifies() {
    granted_token_verifies(Algorithm::RS256).await;
}

#[tokio::test]
async fn bad_signature_another_key_under_the_registered_kid() {
    let env = Env::start(Algorithm::EdDSA).await;
    let impostor = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    let signer = Signer::builder(CLIENT, KID, impostor).build().unwrap();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(
        detail,
        r#"client_assertion: signature does not verify with the public key of kid "main""#
    );
}

#[tokio::test]
async fn unknown_kid() {
    let env = Env::start(Algorithm::EdDSA).await;
    let signer = Signer::builder(CLIENT, "retired", env.key.clone())
        .build()
        .unwrap();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(detail, r#"client_assertion: unknown kid "retired""#);
}

#[tokio::test]
async fn wrong_iss_another_client_id() {
    let env = Env::start(Algorithm::ES256).await;
    let signer = Signer::builder("someone-else", KID, env.key.clone())
        .build()
        .unwrap();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(
        detail,
        r#"client_assertion: iss "someone-else" is not the registered client id"#
    );
}

#[tokio::test]
async fn wrong_aud() {
    let env = Env::start(Algorithm::EdDSA).await;
    let signer = Signer::builder(CLIENT, KID, env.key.clone())
        .audience("https://elsewhere/token")
        .build()
        .unwrap();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(
        detail,
        r#"client_assertion: aud "https://elsewhere/token" is not the expected audience "/token""#
    );
}

#[tokio::test]
async fn expired_assertion_from_a_clock_an_hour_behind() {
    let env = Env::start(Algorithm::EdDSA).await;
    let pinned = whole_second(-3600);
    let signer = Signer::builder(CLIENT, KID, env.key.clone())
        .clock(std::sync::Arc::new(FixedClock(pinned)))
        .build()
        .unwrap();
    let exp = common::unix(pinned) + i64::try_from(signer.lifetime().as_secs()).unwrap();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(claim_i64(&env.request(1), "exp"), exp, "stamped by the pin");
    let sandbox_time = sandbox_time_in(&detail, unix_now());
    assert_eq!(
        detail,
        format!("client_assertion: exp {exp} is in the past (sandbox time {sandbox_time})")
    );
}

#[tokio::test]
async fn future_iat_from_a_clock_minutes_ahead() {
    let env = Env::start(Algorithm::EdDSA).await;
    // 150 s ahead: iat (150 - 10 s of back-dating) is past the sandbox's 60 s tolerance, while
    // exp (150 + 60 s) is within its 300 s assertion lifetime, so iat is the check that fails.
    let pinned = whole_second(150);
    let signer = Signer::builder(CLIENT, KID, env.key.clone())
        .clock(std::sync::Arc::new(FixedClock(pinned)))
        .build()
        .unwrap();
    let iat = common::unix(pinned) - i64::try_from(signer.clock_skew().as_secs()).unwrap();
    let tolerance = DEFAULT_IAT_TOLERANCE.as_secs();

    let detail = refused(&env, &signed(signer, SCOPE)).await;

    assert_eq!(claim_i64(&env.request(1), "iat"), iat, "stamped by the pin");
    let sandbox_time = sandbox_time_in(&detail, unix_now());
    assert_eq!(
        detail,
        format!(
            "client_assertion: iat {iat} is in the future by more than {tolerance} seconds \
             (sandbox time {sandbox_time})"
        )
    );
}

#[tokio::test]
async fn replayed_jti_the_same_assertion_twice() {
    let env = Env::start(Algorithm::EdDSA).await;
    let assertion = env.signer().sign().unwrap();
    let request = TokenRequest::builder()
        .assertion(assertion)
        .scope(SCOPE)
        .build()
        .unwrap();

    let token = env.client.request_token(&request).await.unwrap();
    env.sandbox
        .verify_access_token(token.access_token().expose_secret())
        .expect("the first use is granted");
    let detail = refused(&env, &request).await;

    let jti = claim_str(&env.request(1), "jti");
    assert_eq!(claim_str(&env.request(2), "jti"), jti, "the same assertion");
    assert_eq!(
        detail,
        format!("client_assertion: jti \"{jti}\" was already used (replay)")
    );
    assert_eq!(env.sandbox.tokens_issued(), 1);
}

#[tokio::test]
async fn bad_scope_not_allowed_for_the_client() {
    let env = Env::start(Algorithm::EdDSA).await;

    let detail = refused(&env, &signed(env.signer(), "trading.write")).await;

    assert_eq!(
        detail,
        r#"scope: "trading.write" is not allowed for client "e2e-client""#
    );
}

#[tokio::test]
async fn bad_scope_not_a_scope_token() {
    let env = Env::start(Algorithm::EdDSA).await;
    // The SDK refuses only lengths and control characters; a quote is the server's to refuse.
    let detail = refused(&env, &signed(env.signer(), r#"bad"scope"#)).await;

    assert_eq!(
        detail,
        r#"scope: "bad\"scope" is not a space-delimited list of scope tokens (RFC 6749 section 3.3)"#
    );
}

#[tokio::test]
async fn scope_length_bounds_are_the_sandboxs_and_the_sdk_refuses_outside_them_before_any_io() {
    let env = Env::start(Algorithm::EdDSA).await;
    assert_eq!(SCOPE_MIN_CHARS..=SCOPE_MAX_CHARS, SCOPE_LENGTH);

    for scope in ["abc".to_owned(), "a".repeat(SCOPE_MAX_CHARS + 1)] {
        let error = TokenRequest::builder()
            .signer(env.signer())
            .scope(scope.as_str())
            .build()
            .expect_err("outside the bounds");
        assert!(
            matches!(error, ibkr_oauth::ConfigError::Request(_)),
            "{error:?}"
        );
        let error = TokenProvider::builder(env.client.clone(), env.signer())
            .scope(scope.as_str())
            .build()
            .expect_err("outside the bounds");
        assert!(
            matches!(error, Error::Config(ibkr_oauth::ConfigError::Request(_))),
            "{error:?}"
        );
    }
    assert_eq!(env.sandbox.request_count(), 0, "nothing was sent");

    // At the upper bound the SDK sends it and the sandbox reads it: only its policy refuses.
    let longest = "a".repeat(SCOPE_MAX_CHARS);
    let detail = refused(&env, &signed(env.signer(), &longest)).await;
    assert_eq!(
        detail,
        format!(
            "scope: \"{}\"… is not allowed for client \"{CLIENT}\"",
            "a".repeat(64)
        )
    );
}

#[tokio::test]
async fn an_injected_500_is_a_retryable_problem_and_the_next_request_succeeds() {
    let env = Env::start(Algorithm::EdDSA).await;
    env.sandbox.inject_fault(Fault::ServerError, 1);
    let request = signed(env.signer(), SCOPE);

    let error = env.client.request_token(&request).await.unwrap_err();

    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.retry_after(), None);
    let Error::Problem { problem, response } = &error else {
        panic!("expected Error::Problem, got {error:?}");
    };
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem.status(), Some(500));
    assert_eq!(problem.problem_type(), "/simple");
    assert_eq!(problem.title(), Some("Internal Server Error"));
    assert_eq!(
        problem.detail(),
        Some("injected fault: the sandbox was told to fail this request")
    );
    assert_eq!(env.request(1).fault, Some(Fault::ServerError));

    // The fault is used up: the same request (a fresh assertion) is granted.
    env.client.request_token(&request).await.unwrap();
    assert_eq!(env.sandbox.request_count(), 2);
}

#[tokio::test]
async fn an_injected_429_carries_its_retry_after() {
    let env = Env::start(Algorithm::EdDSA).await;
    let request = signed(env.signer(), SCOPE);
    for (asked, sent) in [(7_000, 7), (1_500, 2)] {
        env.sandbox.inject_fault(
            Fault::TooManyRequests {
                retry_after: Duration::from_millis(asked),
            },
            1,
        );

        let error = env.client.request_token(&request).await.unwrap_err();

        assert!(error.is_retryable(), "{error}");
        assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        // Whole seconds on the wire, rounded up.
        assert_eq!(error.retry_after(), Some(Duration::from_secs(sent)));
        let Error::Problem { problem, .. } = &error else {
            panic!("expected Error::Problem, got {error:?}");
        };
        assert_eq!(problem.problem_type(), "/simple");
        assert_eq!(
            problem.detail(),
            Some(format!("injected fault: too many requests; retry after {sent} seconds").as_str())
        );
    }
    assert_eq!(env.sandbox.request_count(), 2);
}

/// The signer's longest lifetime is one the sandbox accepts: the two limits agree.
#[tokio::test]
async fn the_signers_longest_assertion_lifetime_is_accepted() {
    let env = Env::start(Algorithm::EdDSA).await;
    let signer = Signer::builder(CLIENT, KID, env.key.clone())
        .lifetime(ibkr_oauth::Signer::MAX_LIFETIME)
        .build()
        .expect("the maximum lifetime is a valid setting");
    let token = env
        .client
        .request_token(&signed(signer, SCOPE))
        .await
        .expect("granted");
    assert!(token.expires_in() > std::time::Duration::ZERO);
}
