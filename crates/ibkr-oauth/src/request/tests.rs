//! Unit tests of `request` (may use its private items).

use super::*;

fn builder() -> TokenRequestBuilder {
    TokenRequest::builder().assertion(ClientAssertion::new("a.b.c"))
}

#[test]
fn defaults() {
    let r = builder().build().unwrap();
    assert_eq!(r.grant_type(), "client_credentials");
    assert_eq!(
        r.client_assertion_type(),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(r.scope(), None);
}

#[test]
fn scope_and_scopes_join_with_spaces() {
    let r = builder()
        .scope("echo.read")
        .scopes(["echo.write", "sso-sessions.write"]);
    assert_eq!(
        r.build().unwrap().scope(),
        Some("echo.read echo.write sso-sessions.write")
    );
}

#[test]
fn missing_or_empty_assertion_is_refused() {
    let e = TokenRequest::builder().build().unwrap_err();
    assert!(matches!(e, ConfigError::Request(_)), "{e:?}");
    let e = TokenRequest::builder()
        .assertion(ClientAssertion::new(" "))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::Request(_)), "{e:?}");
}

#[test]
fn empty_scope_is_refused() {
    assert!(matches!(
        builder().scope("").build(),
        Err(ConfigError::Request(_))
    ));
    assert!(matches!(
        builder().scope("echo.read\n").build(),
        Err(ConfigError::Request(_))
    ));
}
