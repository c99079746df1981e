//! The credential contract: the one versioned JSON object every delivery path hands a token out
//! as (`ibkr-oauth token --json`, the agent's `GET /token`, JSON sink files), described by the
//! JSON Schema `schema/token-v1.schema.json` beside this crate's `Cargo.toml`.
//!
//! ```json
//! {"version": 1, "access_token": "eyJ...", "token_type": "Bearer",
//!  "expires_at": "2026-12-04T12:00:00Z", "scope": "sso-sessions.write"}
//! ```
//!
//! A reader checks `version` first. Version 1 has exactly these five fields; a change to any of
//! them is a new version.

use std::time::{SystemTime, UNIX_EPOCH};

use ibkr_oauth::{ExposeSecret, Token};
use serde_json::{Value, json};

use crate::output::REDACTED;

/// The contract's version.
pub const VERSION: u64 = 1;

/// The JSON Schema of the contract (the file `schema/token-v1.schema.json`).
pub const SCHEMA: &str = include_str!("../schema/token-v1.schema.json");

/// `token` as the contract's object; the access token is [`REDACTED`] unless `reveal`.
pub fn token_object(token: &Token, reveal: bool) -> Value {
    let access = if reveal {
        token.access_token().expose_secret().to_owned()
    } else {
        REDACTED.to_owned()
    };
    json!({
        "version": VERSION,
        "access_token": access,
        "token_type": token.token_type().unwrap_or("Bearer"),
        "expires_at": rfc3339(token.expires_at()),
        "scope": token.scope().unwrap_or_default(),
    })
}

/// `at` as RFC 3339 in UTC, whole seconds: `2026-12-04T12:00:00Z`. An instant the calendar
/// cannot show (past year 9999) prints as the largest one, before 1970 as the epoch.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(253_402_300_799); // 9999-12-31T23:59:59Z
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn instants_print_as_rfc3339_utc() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2)),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn the_object_has_the_five_fields_and_redacts_unless_asked() {
        let token = Token::builder(ibkr_oauth::SecretString::from("abc.def.ghi"))
            .token_type("Bearer")
            .expires_in(Duration::from_secs(60))
            .build()
            .expect("a token");
        let hidden = token_object(&token, false);
        assert_eq!(hidden["access_token"], REDACTED);
        assert_eq!(hidden["version"], 1);
        assert_eq!(hidden["scope"], "");
        assert_eq!(hidden.as_object().map(|o| o.len()), Some(5));
        assert_eq!(token_object(&token, true)["access_token"], "abc.def.ghi");
    }
}
