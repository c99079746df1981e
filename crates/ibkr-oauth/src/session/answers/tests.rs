//! Unit tests of `answers`.

use super::*;

#[test]
fn tickle_success_as_in_the_spec() {
    let body = br#"{"session":"bb665d0f55b6289d70bc7380089fc96f","ssoExpires":460311,
        "collission":false,"userId":123456789,"hmds":{"error":"no bridge"},
        "iserver":{"authStatus":{"authenticated":true,"established":true,"competing":false,
        "connected":true,"message":"","MAC":"98:F2:B3:23:BF:A0",
        "serverInfo":{"serverName":"JifN19053","serverVersion":"Build 10.25.0p"}}}}"#;
    let t = parse_tickle(body).unwrap();
    assert_eq!(t.sso_expires, Some(Duration::from_millis(460_311)));
    let b = t.brokerage.unwrap();
    assert!(b.authenticated && b.connected && !b.competing);
    assert_eq!(b.message, None);
    assert_eq!(t.error, None);
}

#[test]
fn tickle_failure_as_in_the_spec() {
    let t = parse_tickle(br#"{"error":"failed to process request"}"#).unwrap();
    assert_eq!(t.error.as_deref(), Some("failed to process request"));
    assert_eq!(t.brokerage, None);
}

#[test]
fn tickle_refuses_what_is_not_an_answer() {
    assert_eq!(parse_tickle(b"<html>"), Err("not JSON"));
    assert_eq!(parse_tickle(b"[1]"), Err("not a JSON object"));
    assert!(parse_tickle(br#"{"ssoExpires":"soon"}"#).is_err());
}

#[test]
fn validate_as_in_the_spec_with_64_bit_times() {
    let body = br#"{"USER_ID":123456789,"USER_NAME":"user1234","RESULT":true,
        "AUTH_TIME":1702580846836,"CREDENTIAL":"user1234","IP":"12.345.678.901",
        "EXPIRES":415890,"QUALIFIED_FOR_MOBILE_AUTH":null,"IS_MASTER":false,
        "lastAccessed":1702581069652,"LOGIN_TYPE":2,"region":"NJ"}"#;
    let v = parse_validate(body).unwrap();
    assert!(v.valid);
    assert_eq!(v.credential.as_deref(), Some("user1234"));
    assert_eq!(v.expires, Some(Duration::from_millis(415_890)));
    assert_eq!(v.is_master, Some(false));
}

#[test]
fn negative_times_are_no_time() {
    let v = parse_validate(br#"{"RESULT":false,"EXPIRES":-5}"#).unwrap();
    assert!(!v.valid);
    assert_eq!(v.expires, None);
}

#[test]
fn created_needs_a_token() {
    assert!(parse_created(br#"{"active":true,"access_token":""}"#).is_err());
    assert!(parse_created(br#"{"active":true}"#).is_err());
    use secrecy::ExposeSecret;
    let t = parse_created(br#"{"active":true,"access_token":"abc"}"#).unwrap();
    assert_eq!(t.expose_secret(), "abc");
}

#[test]
fn refusal_detail_reads_problems_and_errors() {
    assert_eq!(
        refusal_detail(br#"{"type":"/simple","title":"Unauthorized","status":401,"detail":"Access token expired"}"#).as_deref(),
        Some("Access token expired")
    );
    assert_eq!(
        refusal_detail(br#"{"error":"no bridge"}"#).as_deref(),
        Some("no bridge")
    );
    assert_eq!(refusal_detail(b"plain"), None);
}
