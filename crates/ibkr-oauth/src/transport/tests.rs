//! Unit tests of `transport` (may use its private items).

use super::*;
use crate::response::parse_http_date;

#[test]
fn date_header_is_parsed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        DATE,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    let raw = raw_response(
        StatusCode::OK,
        &headers,
        Bytes::new(),
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(
        raw.info().server_date,
        parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    );
}
