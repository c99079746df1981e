//! How results print: redaction, local time, durations, the token's summary, and shell-ready
//! settings (the token's JSON is [`crate::contract`]).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::{ExposeSecret, Token};

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// Converts instants to local time with the offset read at start-up.
///
/// The offset is the one in force when the command started (a daylight-saving change before
/// a token expires is not applied). Where it cannot be read, times print in UTC.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    offset: Option<time::UtcOffset>,
}

impl LocalTime {
    /// Reads the local offset. Call it before any thread starts: on some platforms the offset
    /// can only be read safely while the process has one thread, and is `None` otherwise.
    pub fn detect() -> Self {
        Self {
            offset: time::UtcOffset::current_local_offset().ok(),
        }
    }

    /// Prints times in UTC.
    pub fn utc() -> Self {
        Self { offset: None }
    }

    /// `2025-06-01 14:03:07 +02:00` (or `... UTC`); `None` for an instant the calendar cannot
    /// show (before 1970 or past year 9999).
    pub fn format(&self, at: SystemTime) -> Option<String> {
        let secs = i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
        let utc = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
        let (t, zone) = match self.offset {
            Some(offset) if !offset.is_utc() => {
                let (h, m, _) = offset.as_hms();
                let sign = if offset.is_negative() { '-' } else { '+' };
                let zone = format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs());
                (utc.checked_to_offset(offset)?, zone)
            }
            _ => (utc, "UTC".to_owned()),
        };
        Some(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }

    /// The local time and how far from `now` it is: `2025-06-01 14:03:07 +02:00 (in 23h 59m
    /// 59s)`.
    pub fn describe(&self, at: SystemTime, now: SystemTime) -> String {
        let relative = match at.duration_since(now) {
            Ok(ahead) => format!("in {}", duration(ahead)),
            Err(e) => format!("{} ago", duration(e.duration())),
        };
        match self.format(at) {
            Some(local) => format!("{local} ({relative})"),
            None => relative,
        }
    }
}

/// `23h 59m 59s`, `5m 0s`, `42s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// The secret, or [`REDACTED`] with its length.
pub fn secret(value: &str, reveal: bool) -> String {
    if reveal {
        value.to_owned()
    } else {
        format!("{REDACTED} ({} characters)", value.chars().count())
    }
}

/// The human summary of a token, one `name: value` a line, each line starting with `indent`.
pub fn token_summary(token: &Token, reveal: bool, local: &LocalTime, indent: &str) -> String {
    let mut out = String::new();
    let access = secret(token.access_token().expose_secret(), reveal);
    // Server-supplied text goes through the SDK's one sanitiser before it reaches a terminal.
    let scope = match token.scope() {
        Some(s) if !s.trim().is_empty() => ibkr_oauth::sanitize(s, 1024),
        _ => "(none granted)".to_owned(),
    };
    let expires = if token.expires_in_reported() {
        local.describe(token.expires_at(), SystemTime::now())
    } else {
        "not stated by the server (treated as expired at once)".to_owned()
    };
    let _ = writeln!(out, "{indent}access token: {access}");
    let _ = writeln!(
        out,
        "{indent}token type:   {}",
        token
            .token_type()
            .map_or_else(|| "(none)".to_owned(), |t| ibkr_oauth::sanitize(t, 64))
    );
    let _ = writeln!(out, "{indent}scopes:       {scope}");
    let _ = writeln!(out, "{indent}expires:      {expires}");
    out
}

/// `KEY=value` for a POSIX shell: the value single-quoted unless it is plainly safe.
pub fn shell_assignment(name: &str, value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c));
    if safe {
        format!("{name}={value}")
    } else {
        format!("{name}='{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_local_times_and_durations() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            LocalTime::utc().format(at).as_deref(),
            Some("2023-11-14 22:13:20 UTC")
        );
        let plus_two = LocalTime {
            offset: time::UtcOffset::from_hms(2, 0, 0).ok(),
        };
        assert_eq!(
            plus_two.format(at).as_deref(),
            Some("2023-11-15 00:13:20 +02:00")
        );
        let minus = LocalTime {
            offset: time::UtcOffset::from_hms(-3, -30, 0).ok(),
        };
        assert_eq!(
            minus.format(at).as_deref(),
            Some("2023-11-14 18:43:20 -03:30")
        );
        assert_eq!(
            LocalTime::utc().format(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2)),
            None
        );
        assert_eq!(duration(Duration::from_secs(86_399)), "23h 59m 59s");
        assert_eq!(duration(Duration::from_secs(300)), "5m 0s");
        assert_eq!(duration(Duration::from_secs(7)), "7s");
        assert_eq!(
            LocalTime::utc().describe(at, at + Duration::from_secs(5)),
            "2023-11-14 22:13:20 UTC (5s ago)"
        );
    }

    #[test]
    fn secrets_are_redacted_unless_revealed() {
        assert_eq!(secret("abc.def", false), "[redacted] (7 characters)");
        assert_eq!(secret("abc.def", true), "abc.def");
    }

    #[test]
    fn shell_values_are_quoted_when_needed() {
        assert_eq!(shell_assignment("A", "/tmp/x.pem"), "A=/tmp/x.pem");
        assert_eq!(shell_assignment("A", "/tmp/my key"), "A='/tmp/my key'");
        assert_eq!(shell_assignment("A", "it's"), r"A='it'\''s'");
        assert_eq!(shell_assignment("A", ""), "A=''");
    }
}
