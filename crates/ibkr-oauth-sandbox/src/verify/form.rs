//! A strict `application/x-www-form-urlencoded` parser for hostile input.
//!
//! Hand-written rather than `form_urlencoded::parse`, which never fails: it turns invalid UTF-8
//! into U+FFFD and leaves a stray `%` as it is, so a mangled field would be checked as if it
//! were what the client meant. Here every such body is refused with a detail that names the
//! field (never its value). Memory stays bounded: the body is already capped, the output is
//! never larger than the input, and the field count and sizes are capped too.

use super::quote;

/// The most fields a form may have (a token request has four).
pub(crate) const MAX_FIELDS: usize = 32;
/// The longest field name, in bytes once decoded.
pub(crate) const MAX_NAME_BYTES: usize = 64;
/// The longest field value, in bytes once decoded (an assertion is about 1 KiB).
pub(crate) const MAX_VALUE_BYTES: usize = 16 * 1024;

/// The fields of an urlencoded body, in order, or a `detail` saying why it is refused.
pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut fields = Vec::new();
    for segment in body.split(|b| *b == b'&').filter(|s| !s.is_empty()) {
        if fields.len() == MAX_FIELDS {
            return Err(format!("form: more than {MAX_FIELDS} fields"));
        }
        let (raw_name, raw_value) = match segment.iter().position(|b| *b == b'=') {
            Some(at) => (
                segment.get(..at).unwrap_or_default(),
                segment.get(at + 1..).unwrap_or_default(),
            ),
            None => (segment, &[][..]),
        };
        let name = decode(raw_name, MAX_NAME_BYTES).map_err(|problem| match problem {
            Problem::TooLong => format!("form: a field name is longer than {MAX_NAME_BYTES} bytes"),
            other => format!("form: a field name {}", other.text()),
        })?;
        let value = decode(raw_value, MAX_VALUE_BYTES).map_err(|problem| match problem {
            Problem::TooLong => format!(
                "form: field {} is longer than {MAX_VALUE_BYTES} bytes",
                quote(&name)
            ),
            other => format!("form: field {} {}", quote(&name), other.text()),
        })?;
        fields.push((name, value));
    }
    Ok(fields)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    TooLong,
    BadEscape,
    NotUtf8,
    Control,
}

impl Problem {
    fn text(self) -> &'static str {
        match self {
            Self::TooLong => "is too long",
            Self::BadEscape => "has a `%` not followed by two hex digits",
            Self::NotUtf8 => "is not valid UTF-8 once decoded",
            Self::Control => "contains a control character",
        }
    }
}

/// Percent-decodes one name or value (`+` is a space), checking size, UTF-8 and controls.
fn decode(raw: &[u8], max: usize) -> Result<String, Problem> {
    let mut out = Vec::with_capacity(raw.len().min(max));
    let mut bytes = raw.iter().copied();
    while let Some(byte) = bytes.next() {
        let decoded = match byte {
            b'+' => b' ',
            b'%' => {
                let high = bytes.next().and_then(hex).ok_or(Problem::BadEscape)?;
                let low = bytes.next().and_then(hex).ok_or(Problem::BadEscape)?;
                high << 4 | low
            }
            other => other,
        };
        if out.len() == max {
            return Err(Problem::TooLong);
        }
        out.push(decoded);
    }
    let text = String::from_utf8(out).map_err(|_| Problem::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(Problem::Control);
    }
    Ok(text)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(fields: &[(String, String)]) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    }

    #[test]
    fn parses_what_a_client_sends() {
        let body = b"grant_type=client_credentials&scope=echo.read+echo.write&a=%2B%2F%3D&flag";
        let fields = parse_form(body).unwrap();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("grant_type", "client_credentials"),
                ("scope", "echo.read echo.write"),
                ("a", "+/="),
                ("flag", ""),
            ]
        );
        assert_eq!(parse_form(b"").unwrap(), vec![]);
        assert_eq!(parse_form(b"&&a=1&").unwrap().len(), 1);
    }

    #[test]
    fn refuses_hostile_bodies_with_a_detail_that_names_the_field() {
        let err = |body: &[u8]| parse_form(body).unwrap_err();
        assert_eq!(
            err(b"scope=%ff%fe"),
            "form: field \"scope\" is not valid UTF-8 once decoded"
        );
        assert_eq!(
            err(b"scope=a%00b"),
            "form: field \"scope\" contains a control character"
        );
        assert_eq!(
            err(b"scope=a%0Ab"),
            "form: field \"scope\" contains a control character"
        );
        assert_eq!(
            err(b"scope=100%"),
            "form: field \"scope\" has a `%` not followed by two hex digits"
        );
        assert_eq!(
            err(b"%zz=1"),
            "form: a field name has a `%` not followed by two hex digits"
        );
        assert_eq!(
            err(format!("{}=1", "n".repeat(65)).as_bytes()),
            "form: a field name is longer than 64 bytes"
        );
        assert_eq!(
            err(format!("client_assertion={}", "a".repeat(MAX_VALUE_BYTES + 1)).as_bytes()),
            "form: field \"client_assertion\" is longer than 16384 bytes"
        );
        assert_eq!(
            err("a=1&".repeat(33).as_bytes()),
            "form: more than 32 fields"
        );
        assert!(parse_form(format!("v={}", "a".repeat(MAX_VALUE_BYTES)).as_bytes()).is_ok());
    }

    fn printable() -> impl Strategy<Value = String> {
        "[^\\p{Cc}]{0,40}"
    }

    proptest! {
        /// Any bytes: no panic, and never more output than input.
        #[test]
        fn any_body_is_parsed_or_refused(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse_form(&body) {
                Ok(fields) => {
                    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
                    prop_assert!(size <= body.len());
                    prop_assert!(fields.len() <= MAX_FIELDS);
                }
                Err(detail) => prop_assert!(detail.starts_with("form: ")),
            }
        }

        /// What a form encoder writes comes back as it was.
        #[test]
        fn encoded_fields_round_trip(
            fields in proptest::collection::vec(("[a-z_]{1,20}", printable()), 0..8)
        ) {
            prop_assert_eq!(parse_form(encode(&fields).as_bytes()).unwrap(), fields);
        }

        /// A control character anywhere in a value is refused, never passed on.
        #[test]
        fn control_characters_are_refused(
            before in printable(),
            control in prop_oneof![0u32..0x20, Just(0x7f), 0x80u32..0xa0],
            after in printable(),
        ) {
            let value = format!("{before}{}{after}", char::from_u32(control).unwrap());
            let body = encode(&[("scope".to_owned(), value)]);
            prop_assert_eq!(
                parse_form(body.as_bytes()).unwrap_err(),
                "form: field \"scope\" contains a control character"
            );
        }
    }
}
