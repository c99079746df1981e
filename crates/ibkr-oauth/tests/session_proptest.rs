//! The tickle and validate parsers against hostile bodies: never a panic, every kept text
//! bounded, and well-formed answers read as IBKR's spec gives them.

use ibkr_oauth::session::{parse_tickle, parse_validate};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("session".to_owned()),
                    Just("ssoExpires".to_owned()),
                    Just("error".to_owned()),
                    Just("iserver".to_owned()),
                    Just("authStatus".to_owned()),
                    Just("message".to_owned()),
                    Just("RESULT".to_owned()),
                    Just("EXPIRES".to_owned()),
                    Just("USER_NAME".to_owned()),
                    ".{0,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Members IBKR's answers have, with values of any type.
fn answer_like() -> impl Strategy<Value = Value> {
    (any_json(), any_json(), any_json(), any_json(), any_json()).prop_map(|(a, b, c, d, e)| {
        json!({
            "session": a, "ssoExpires": b, "error": c,
            "iserver": {"authStatus": {"authenticated": d, "message": e}},
            "RESULT": true, "EXPIRES": b, "USER_NAME": e, "IP": c,
        })
    })
}

fn bounded_tickle(body: &[u8]) {
    if let Ok(t) = parse_tickle(body) {
        for text in [
            t.error.as_deref(),
            t.brokerage.as_ref().and_then(|b| b.message.as_deref()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(text.chars().count() <= 201, "{} chars kept", text.len());
            assert!(!text.chars().any(char::is_control));
        }
    }
}

fn bounded_validate(body: &[u8]) {
    if let Ok(v) = parse_validate(body) {
        for text in [
            v.user_name.as_deref(),
            v.credential.as_deref(),
            v.ip.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(text.chars().count() <= 201);
            assert!(!text.chars().any(char::is_control));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        bounded_tickle(&body);
        bounded_validate(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let body = serde_json::to_vec(&value).unwrap();
        bounded_tickle(&body);
        bounded_validate(&body);
    }

    #[test]
    fn answer_shaped_json_never_panics(value in answer_like()) {
        let body = serde_json::to_vec(&value).unwrap();
        bounded_tickle(&body);
        bounded_validate(&body);
    }

    #[test]
    fn a_well_formed_tickle_is_read(expires in 0i32.., authenticated: bool, competing: bool) {
        let body = json!({
            "session": "abc", "ssoExpires": expires, "collission": false, "userId": 1,
            "iserver": {"authStatus": {"authenticated": authenticated, "competing": competing,
                        "connected": true, "message": ""}}
        });
        let t = parse_tickle(&serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(t.sso_expires.map(|d| d.as_millis()), Some(expires as u128));
        let b = t.brokerage.unwrap();
        prop_assert_eq!((b.authenticated, b.competing), (authenticated, competing));
        prop_assert!(t.error.is_none());
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_tickle(deep.as_bytes()).is_err());
    assert!(parse_validate(deep.as_bytes()).is_err());
    let deep_object = format!(
        r#"{{"iserver":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    assert!(parse_tickle(deep_object.as_bytes()).is_err());
}
