//! Unit tests of `sanitize` (may use its private items).

use super::*;

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

#[test]
fn removes_controls_and_collapses_space() {
    assert_eq!(sanitize("a\r\n\tb\u{202E}c  ", 100), "a b c");
    assert_eq!(sanitize("abcdef", 3), "abc…");
}

#[test]
fn redacts_jwt_shaped_words() {
    assert_eq!(
        sanitize(&format!("token=\"{JWT}\" end"), 200),
        "token=\"[redacted]\" end"
    );
    assert_eq!(
        sanitize("see api.ibkr.com/v1.2", 200),
        "see api.ibkr.com/v1.2"
    );
}

#[test]
fn redaction_runs_before_the_cut() {
    // The cut falls inside the JWT: nothing of it may show.
    let shown = sanitize(&format!("x {JWT}"), 10);
    assert!(!shown.contains("eyJ"), "{shown}");
}

#[test]
fn a_jwt_straddling_the_scan_limit_is_redacted_whole() {
    for pad in [
        EXCERPT_SCAN_BYTES - 40,
        EXCERPT_SCAN_BYTES - 3,
        EXCERPT_SCAN_BYTES - 20,
    ] {
        let body = format!("{} {JWT} tail", "a ".repeat(pad / 2));
        let shown = excerpt(body.as_bytes(), false);
        assert!(!shown.contains("eyJ"), "pad {pad}: {shown}");
        let cut =
            String::from_utf8_lossy(&body.as_bytes()[..scan_end(body.as_bytes())]).into_owned();
        assert!(!cut.ends_with("eyJhbGciOiJSUzI1NiJ9"), "pad {pad}");
    }
}

#[test]
fn an_endless_word_at_the_scan_limit_is_dropped() {
    let body = format!("head {}", "eyJ".repeat(20_000));
    assert_eq!(scan_end(body.as_bytes()), 5);
    assert_eq!(excerpt(body.as_bytes(), false), "head");
}

#[test]
fn html_excerpt_drops_tags() {
    let body = b"<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>";
    assert_eq!(excerpt(body, true), "502 Bad Gateway nginx");
}
