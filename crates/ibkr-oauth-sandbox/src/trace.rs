//! One line per request on stderr (or any sink): time, request id, client id, kid, endpoint,
//! status and outcome. Never a secret: no assertion, access token, signed body or key reaches a
//! line; values taken from the request are quoted, escaped and cut.

use std::fmt;
use std::sync::Arc;

use crate::log::Endpoint;
use crate::verify::quote;

/// Where request lines go.
#[derive(Clone)]
pub(crate) struct TraceSink(Arc<dyn Fn(&str) + Send + Sync>);

impl TraceSink {
    pub(crate) fn stderr() -> Self {
        Self(Arc::new(|line| eprintln!("{line}")))
    }

    pub(crate) fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(sink))
    }

    pub(crate) fn emit(&self, line: &str) {
        (self.0)(line);
    }
}

impl fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TraceSink")
    }
}

/// What one line says about one request.
pub(crate) struct Line<'a> {
    pub(crate) unix_secs: i64,
    pub(crate) request_id: &'a str,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) kid: Option<&'a str>,
    pub(crate) endpoint: Endpoint,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// `None` when the connection was closed without an answer.
    pub(crate) status: Option<u16>,
    /// The problem's detail of a refusal.
    pub(crate) detail: Option<&'a str>,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), quote);
        write!(
            f,
            "{} ibkr-oauth-sandbox request_id={} client={} kid={} endpoint={} {} {}",
            rfc3339(self.unix_secs),
            self.request_id,
            or_dash(self.client_id),
            or_dash(self.kid),
            self.endpoint.as_str(),
            // hyper accepts only a token as the method and visible ASCII in the path.
            self.method,
            self.path,
        )?;
        match (self.status, self.detail) {
            (None, _) => f.write_str(" status=- outcome=closed"),
            (Some(status), None) => write!(f, " status={status} outcome=ok"),
            (Some(status), Some(detail)) => {
                // A detail is built by the sandbox from quoted values; Debug escapes it again
                // so that the line stays one line.
                write!(f, " status={status} outcome=refused detail={detail:?}")
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(month <= 2));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_215_845), "2026-12-02T12:50:45Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        let _ = (rfc3339(i64::MAX), rfc3339(i64::MIN));
    }

    #[test]
    fn a_line_is_one_line_with_every_part() {
        let line = Line {
            unix_secs: 0,
            request_id: "r1",
            client_id: Some("c\nx"),
            kid: None,
            endpoint: Endpoint::Token,
            method: "POST",
            path: "/oauth2/api/v1/token",
            status: Some(400),
            detail: Some("client_assertion: unknown kid \"k\""),
        }
        .to_string();
        assert_eq!(
            line,
            "1970-01-01T00:00:00Z ibkr-oauth-sandbox request_id=r1 client=\"c\\nx\" kid=- \
             endpoint=token POST /oauth2/api/v1/token status=400 outcome=refused \
             detail=\"client_assertion: unknown kid \\\"k\\\"\""
        );
    }
}
