//! Unit tests of `client` (may use its private items).

use super::*;

#[test]
fn accepted_base_urls() {
    for (raw, want, https) in [
        ("https://api.ibkr.com", "https://api.ibkr.com", true),
        ("https://api.ibkr.com/", "https://api.ibkr.com", true),
        (
            "https://gw.example/prefix/",
            "https://gw.example/prefix",
            true,
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", false),
        ("http://127.5.6.7", "http://127.5.6.7", false),
        ("http://[::1]:9000", "http://[::1]:9000", false),
        ("http://LOCALHOST:1", "http://localhost:1", false),
    ] {
        assert_eq!(
            validate_base_url(raw).unwrap(),
            (want.to_owned(), https),
            "{raw}"
        );
    }
}

#[test]
fn a_base_url_with_the_token_path_is_refused_with_the_server_to_give() {
    for (raw, server) in [
        (
            "https://api.ibkr.com/oauth2/api/v1/token",
            "https://api.ibkr.com",
        ),
        (
            "http://127.0.0.1:8080/oauth2/api/v1/token/",
            "http://127.0.0.1:8080",
        ),
        (
            "https://gw.example/prefix/oauth2/api/v1/token",
            "https://gw.example/prefix",
        ),
    ] {
        let Err(ConfigError::Client(ClientSetting::BaseUrlIsTokenUrl { server: given, .. })) =
            validate_base_url(raw)
        else {
            panic!("{raw} is refused as the token URL");
        };
        assert_eq!(given, server);
    }
}

#[test]
fn refused_base_urls() {
    for raw in [
        "http://api.ibkr.com",
        "http://128.0.0.1",
        "http://[::2]",
        "http://localhost.example.com",
        "http://10.0.0.1",
        "ftp://api.ibkr.com",
        "api.ibkr.com",
        "",
        "https://user:pw@api.ibkr.com",
        "https://api.ibkr.com/?x=1",
        "https://api.ibkr.com/#f",
        "file:///etc/passwd",
    ] {
        assert!(
            matches!(validate_base_url(raw), Err(ConfigError::Client(_))),
            "{raw}"
        );
    }
}
