//! What the builders refuse before any network I/O: URL policy, timeouts, caps, scopes.

use std::time::Duration;

use ibkr_oauth::config_error::RequestSetting;
use ibkr_oauth::constants::{SCOPE_MAX_CHARS, SCOPE_MIN_CHARS};
use ibkr_oauth::{
    ClientAssertion, ConfigError, IBKR_PRODUCTION, IBKR_QA, TokenClient, TokenRequest,
};

fn config_error(result: Result<TokenClient, ConfigError>) -> String {
    match result {
        Err(ConfigError::Client(setting)) => setting.to_string(),
        other => panic!("expected ConfigError::Client, got {other:?}"),
    }
}

#[test]
fn defaults_point_at_production() {
    let client = TokenClient::new().unwrap();
    assert_eq!(client.base_url(), IBKR_PRODUCTION);
    assert_eq!(
        client.token_url(),
        "https://api.ibkr.com/oauth2/api/v1/token"
    );
    let sandbox = TokenClient::builder().base_url(IBKR_QA).build().unwrap();
    assert_eq!(sandbox.base_url(), "https://qa.interactivebrokers.com");
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_at_build() {
    for url in [
        "http://api.ibkr.com",
        "http://192.168.1.10:8080",
        "http://[2001:db8::1]",
        "http://localhost.evil.example",
    ] {
        let message = config_error(TokenClient::builder().base_url(url).build());
        assert!(message.contains("plain http"), "{url}: {message}");
    }
}

#[test]
fn plain_http_to_loopback_is_allowed() {
    for url in [
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://[::1]:8080",
        "http://localhost:8080",
    ] {
        TokenClient::builder().base_url(url).build().unwrap();
    }
}

#[test]
fn invalid_urls_are_refused_at_build() {
    for url in [
        "",
        "not a url",
        "api.ibkr.com",
        "ftp://api.ibkr.com",
        "https://user:secret@api.ibkr.com",
        "https://api.ibkr.com/?debug=1",
    ] {
        config_error(TokenClient::builder().base_url(url).build());
    }
}

#[test]
fn the_password_of_a_refused_url_is_not_echoed() {
    let message = config_error(
        TokenClient::builder()
            .base_url("https://user:hunter2@api.ibkr.com")
            .build(),
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn zero_timeouts_caps_and_bad_user_agents_are_refused() {
    config_error(TokenClient::builder().timeout(Duration::ZERO).build());
    config_error(
        TokenClient::builder()
            .connect_timeout(Duration::ZERO)
            .build(),
    );
    config_error(TokenClient::builder().max_response_bytes(0).build());
    config_error(TokenClient::builder().user_agent("bad\nagent").build());
}

#[test]
fn caller_reqwest_settings_are_accepted() {
    let client = TokenClient::builder()
        .http_client_builder(reqwest::Client::builder().pool_max_idle_per_host(1))
        .build()
        .unwrap();
    assert_eq!(client.base_url(), IBKR_PRODUCTION);
}

fn request_with_scope(scope: &str) -> Result<TokenRequest, ConfigError> {
    TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .scope(scope)
        .build()
}

fn request_error(result: Result<TokenRequest, ConfigError>) -> String {
    match result {
        Err(ConfigError::Request(setting)) => setting.to_string(),
        other => panic!("expected ConfigError::Request, got {other:?}"),
    }
}

#[test]
fn scope_length_bounds() {
    assert_eq!(SCOPE_MIN_CHARS, 4);
    assert_eq!(SCOPE_MAX_CHARS, 1024);
    request_error(request_with_scope("abc"));
    assert_eq!(request_with_scope("abcd").unwrap().scope(), Some("abcd"));
    let max = "a".repeat(1024);
    assert_eq!(
        request_with_scope(&max).unwrap().scope(),
        Some(max.as_str())
    );
    assert_eq!(
        request_with_scope(&"a".repeat(1025)).unwrap_err(),
        ConfigError::Request(RequestSetting::ScopeLength {
            chars: 1025,
            min: 4,
            max: 1024
        })
    );
    let message = request_error(request_with_scope(&"a".repeat(1025)));
    assert!(message.contains("1025 characters"), "{message}");
    // Characters, not bytes: 1024 two-byte characters are within bounds.
    request_with_scope(&"é".repeat(1024)).unwrap();
}

#[test]
fn joined_scopes_are_measured_together() {
    // Two 2-character scopes join to 5 characters: accepted.
    let r = TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .scopes(["ab", "cd"])
        .build()
        .unwrap();
    assert_eq!(r.scope(), Some("ab cd"));
    // 512 + 1 + 512 = 1025: refused.
    let r = TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .scopes(["a".repeat(512), "b".repeat(512)])
        .build();
    request_error(r);
}

#[test]
fn control_characters_in_scopes_are_refused() {
    for scope in [
        "echo.read\necho.write",
        "echo\u{0}read",
        "echo.read\t",
        "\u{7f}echo",
    ] {
        request_error(request_with_scope(scope));
    }
}

#[test]
fn no_scope_means_no_scope_parameter() {
    let r = TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .build()
        .unwrap();
    assert_eq!(r.scope(), None);
}
