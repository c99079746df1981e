//! Unit tests of `token` (may use its private items).

use super::*;

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[test]
fn full_token() {
    let body = br#"{"access_token":"abc.def.ghi","token_type":"Bearer","scope":"echo.read echo.write","expires_in":86399}"#;
    let t = Token::from_json_body(body, at(), None).unwrap();
    assert_eq!(t.access_token().expose_secret(), "abc.def.ghi");
    let header = t.authorization_header();
    assert!(header.is_sensitive());
    assert_eq!(header.to_str().unwrap(), "Bearer abc.def.ghi");
    assert_eq!(t.token_type(), Some("Bearer"));
    assert_eq!(t.scopes().collect::<Vec<_>>(), ["echo.read", "echo.write"]);
    assert_eq!(t.expires_in(), Duration::from_secs(86399));
    assert_eq!(t.expires_at(), at() + Duration::from_secs(86399));
    assert!(t.expires_in_reported());
}

#[test]
fn missing_expires_in_means_zero_lifetime() {
    let t = Token::from_json_body(br#"{"access_token":"x"}"#, at(), None).unwrap();
    assert_eq!(t.expires_in(), Duration::ZERO);
    assert_eq!(t.expires_at(), at());
    assert!(!t.expires_in_reported());
}

#[test]
fn refusals_never_quote_values() {
    for body in [
        &br#"{"access_token":"SECRET-1","expires_in":"SECRET-2"}"#[..],
        br#"{"access_token":"SECRET-1","expires_in":1.5}"#,
        br#"{"access_token":"SECRET-1","expires_in":-1}"#,
        br#"{"access_token":"SECRET-1","expires_in":18446744073709551615}"#,
        br#"{"access_token":"SECRET-1","expires_in":9223372036854775807}"#,
        br#"{"access_token":"SECRET-1","scope":["SECRET-2"]}"#,
        br#"{"access_token":["SECRET-1"]}"#,
        br#"{"access_token":""}"#,
        br#"{"access_token":"SECRET 1"}"#,
        br#"{"access_token":"SECRET\u001b]0;x\u0007"}"#,
        br#"["SECRET-1",null,null,null]"#,
        br#"{}"#,
        br#"["SECRET-1"]"#,
        br#"{"access_token":"SECRET-1""#,
    ] {
        let reason = Token::from_json_body(body, at(), None).unwrap_err();
        assert!(!reason.contains("SECRET"), "{reason}");
    }
}
