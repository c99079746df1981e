//! Unit tests of `session` (may use its private items).

use super::*;

#[test]
fn no_bridge_is_found_in_json_and_text() {
    assert!(says_no_bridge(br#"{"error":"no bridge","statusCode":400}"#));
    assert!(says_no_bridge(b"Bad Request: no bridge"));
    assert!(!says_no_bridge(br#"{"error":"bad conid"}"#));
}
