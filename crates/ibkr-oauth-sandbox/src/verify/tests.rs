//! Unit tests of the token request checks.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::*;

fn config() -> Config {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let key = |name: &str| std::fs::read_to_string(format!("{dir}{name}")).unwrap();
    crate::Sandbox::builder()
        .client(
            crate::RegisteredClient::new("c")
                .key("rsa", key("rsa_public.pem"))
                .key("ec", key("ec_public.pem"))
                .key("ed", key("ed25519_public.pem")),
        )
        .build()
        .unwrap()
        .config
}

/// base64url of a JSON object with the given members, for building near-valid assertions.
fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

fn assertion_like() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(b64(r#"{"alg":"RS256","kid":"rsa"}"#)),
        Just(b64(r#"{"alg":"ES256","kid":"ec"}"#)),
        Just(b64(r#"{"alg":"EdDSA","kid":"ed"}"#)),
        "[A-Za-z0-9_-]{0,40}",
        any::<String>().prop_map(|s| b64(&s)),
    ];
    let claims = prop_oneof![
        Just(b64(
            r#"{"iss":"c","sub":"c","aud":"/token","iat":0,"exp":1e300,"jti":"x"}"#
        )),
        "[A-Za-z0-9_-]{0,40}",
        any::<String>().prop_map(|s| b64(&s)),
    ];
    let signature = prop_oneof!["[A-Za-z0-9_-]{0,600}", any::<String>()];
    prop_oneof![
        (header, claims, signature).prop_map(|(h, c, s)| format!("{h}.{c}.{s}")),
        any::<String>(),
    ]
}

proptest! {
    /// No form, however hostile, makes the checks panic; every refusal has a detail.
    #[test]
    fn check_never_panics(
        assertion in assertion_like(),
        scope in proptest::option::of(any::<String>()),
        extra in proptest::collection::vec((any::<String>(), any::<String>()), 0..4),
        now in any::<i64>(),
    ) {
        let mut form = vec![
            ("grant_type".to_owned(), GRANT_TYPE.to_owned()),
            ("client_assertion_type".to_owned(), CLIENT_ASSERTION_TYPE.to_owned()),
            ("client_assertion".to_owned(), assertion),
        ];
        form.extend(scope.map(|s| ("scope".to_owned(), s)));
        form.extend(extra);
        if let Err(Refusal(detail)) = check(&config(), now, Some(FORM_CONTENT_TYPE), &form) {
            prop_assert!(!detail.is_empty());
        }
    }

    #[test]
    fn any_body_parses(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(form) = form::parse_form(&body) {
            let _ = check(&config(), 0, Some(FORM_CONTENT_TYPE), &form);
        }
    }
}

#[test]
fn quotes_and_cuts_long_values() {
    assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
    let long = "x".repeat(100);
    assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(64)));
    assert_eq!(quote(&"é".repeat(65)), format!("\"{}\"…", "é".repeat(64)));
}

#[test]
fn scope_syntax() {
    assert_eq!(check_scope_syntax("a.b c.d a.b").unwrap(), ["a.b", "c.d"]);
    assert_eq!(
        check_scope_syntax("abc").unwrap_err().0,
        "scope: must be 4 to 1024 characters, got 3"
    );
    assert!(check_scope_syntax("ab  cd").is_err());
    assert!(check_scope_syntax("ab\"cd").is_err());
    assert!(check_scope_syntax(&"a".repeat(1024)).is_ok());
    assert!(check_scope_syntax(&"a".repeat(1025)).is_err());
}

#[test]
fn content_type_essence() {
    assert!(is_form_content_type("application/x-www-form-urlencoded"));
    assert!(is_form_content_type(
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
    ));
    assert!(!is_form_content_type("application/json"));
    assert!(!is_form_content_type(""));
}
