//! Tests of `response`.

use super::*;
use proptest::prelude::*;

fn raw(status: u16, content_type: Option<&str>, body: &[u8]) -> RawResponse {
    RawResponse {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: content_type.map(str::to_owned),
        date: None,
        retry_after: None,
        location: None,
        request_id: None,
        www_authenticate: None,
        body: Bytes::copy_from_slice(body),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

#[test]
fn media_types() {
    assert_eq!(
        media(Some("application/problem+json; charset=utf-8")),
        Media::Problem
    );
    assert_eq!(media(Some("Application/JSON")), Media::Json);
    assert_eq!(media(Some("application/vnd.x+json")), Media::Json);
    assert_eq!(media(Some("text/html;charset=utf-8")), Media::Html);
    assert_eq!(media(Some("text/plain")), Media::Other);
    assert_eq!(media(None), Media::Other);
}

#[test]
fn retry_after_seconds_and_dates() {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        parse_retry_after(" 120 ", base),
        Some(Duration::from_secs(120))
    );
    // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", base),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", base),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", base), None);
    assert_eq!(parse_retry_after("-5", base), None);
    assert_eq!(parse_retry_after("", base), None);
}

#[test]
fn retry_after_date_is_relative_to_the_date_header_else_to_arrival() {
    let mut r = raw(503, Some("text/plain"), b"busy");
    // received_at is 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT.
    r.retry_after = Some("Tue, 14 Nov 2023 22:14:20 GMT".into());
    assert_eq!(r.info().retry_after, Some(Duration::from_secs(60)));
    assert_eq!(r.info().server_date, None);
    r.date = Some("Tue, 14 Nov 2023 22:14:00 GMT".into());
    assert_eq!(r.info().retry_after, Some(Duration::from_secs(20)));
}

#[test]
fn problem_on_json_with_error_member_is_oauth() {
    let r = raw(
        401,
        Some("application/json"),
        br#"{"error":"invalid_client"}"#,
    );
    assert!(matches!(map_response(&r), Err(Error::OAuth { .. })));
    // problem+json decides for Problem, whatever the members.
    let r = raw(401, Some("application/problem+json"), br#"{"error":"x"}"#);
    match map_response(&r) {
        Err(Error::Problem { problem, .. }) => {
            assert_eq!(problem.extension("error"), Some(&Value::from("x")));
        }
        other => panic!("{other:?}"),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("type".to_owned()),
        Just("title".to_owned()),
        Just("status".to_owned()),
        Just("detail".to_owned()),
        Just("instance".to_owned()),
        Just("error".to_owned()),
        Just("error_description".to_owned()),
        Just("error_uri".to_owned()),
        Just("access_token".to_owned()),
        Just("token_type".to_owned()),
        Just("scope".to_owned()),
        Just("expires_in".to_owned()),
        ".{0,12}",
    ];
    leaf.prop_recursive(3, 32, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/problem+json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("text/html".to_owned())),
        Just(Some("text/plain".to_owned())),
        ".{0,30}".prop_map(Some),
    ]
}

fn header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned())),
        "[0-9]{0,25}".prop_map(Some),
        ".{0,40}".prop_map(Some),
    ]
}

fn check(
    status: u16,
    content_type: Option<String>,
    date: Option<String>,
    retry: Option<String>,
    body: Vec<u8>,
) {
    let r = RawResponse {
        status: StatusCode::from_u16(status).unwrap(),
        content_type,
        date,
        retry_after: retry,
        location: Some("https://elsewhere.example/".into()),
        request_id: Some("x-request-id: abc".into()),
        www_authenticate: None,
        body: Bytes::from(body),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    match map_response(&r) {
        Ok(token) => {
            assert!((200..300).contains(&status));
            let _ = format!("{token:?}");
        }
        Err(e) => {
            // Formatting and the queries must not panic either.
            let _ = (
                format!("{e}"),
                format!("{e:?}"),
                e.is_retryable(),
                e.retry_after(),
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        status in 100u16..=999,
        ct in content_type(),
        date in header(),
        retry in header(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check(status, ct, date, retry, body);
    }

    #[test]
    fn arbitrary_json_never_panics(
        status in prop_oneof![Just(200u16), Just(400), Just(401), Just(429), Just(500), 100u16..=999],
        ct in content_type(),
        date in header(),
        retry in header(),
        value in json_value(),
    ) {
        check(status, ct, date, retry, value.to_string().into_bytes());
    }
}
