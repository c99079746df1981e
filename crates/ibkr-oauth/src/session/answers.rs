//! What IBKR's session endpoints answer, parsed from the generated models: [`TickleStatus`],
//! [`BrokerageStatus`], [`SsoValidation`]. Each parse takes a body the transport already
//! capped in size, never panics, and keeps at most a short sanitised excerpt of any text.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::models::{
    BrokerageSessionStatus, CreateSessionResponse, SsoValidateResponse, SuccessfulTickleResponse,
};

/// How much of a server message is kept.
const MESSAGE_CHARS: usize = 200;

fn text(s: Option<&str>) -> Option<Arc<str>> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Arc::from(crate::sanitize(s, MESSAGE_CHARS)))
}

fn millis(ms: Option<i64>) -> Option<Duration> {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
}

/// The brokerage session as `ssodh/init`, `auth/status` and the tickle report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerageStatus {
    /// The brokerage session is authenticated: `/iserver` calls work.
    pub authenticated: bool,
    /// Another session competes for it.
    pub competing: bool,
    /// Connected to IBKR's backend.
    pub connected: bool,
    /// Fully established (accounts loaded), when IBKR says.
    pub established: Option<bool>,
    /// IBKR's message (`message`, else `fail`), sanitised.
    pub message: Option<Arc<str>>,
}

impl From<&BrokerageSessionStatus> for BrokerageStatus {
    fn from(s: &BrokerageSessionStatus) -> Self {
        Self {
            authenticated: s.authenticated.unwrap_or(false),
            competing: s.competing.unwrap_or(false),
            connected: s.connected.unwrap_or(false),
            established: s.established,
            message: text(s.message.as_deref()).or_else(|| text(s.fail.as_deref())),
        }
    }
}

/// What one tickle said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TickleStatus {
    /// Time left before the SSO session expires (`ssoExpires`).
    pub sso_expires: Option<Duration>,
    /// The brokerage session (`iserver.authStatus`); `None` when the answer has none.
    pub brokerage: Option<BrokerageStatus>,
    /// IBKR accepted the tickle but did not process it (`{"error": ...}`), sanitised.
    pub error: Option<Arc<str>>,
}

/// What `sso/validate` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SsoValidation {
    /// Whether the SSO session is valid (`RESULT`).
    pub valid: bool,
    /// The username of the session (`USER_NAME`).
    pub user_name: Option<Arc<str>>,
    /// The underlying username (`CREDENTIAL`).
    pub credential: Option<Arc<str>>,
    /// The IP IBKR bound the session to (`IP`).
    pub ip: Option<Arc<str>>,
    /// Time left before the SSO session expires (`EXPIRES`).
    pub expires: Option<Duration>,
    /// Whether the account is a master account (`IS_MASTER`).
    pub is_master: Option<bool>,
}

/// Why a success body could not be used (never quotes a value).
pub(crate) type Invalid = &'static str;

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Invalid> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object"),
        Err(_) => Err("not JSON"),
    }
}

/// A tickle answer (200, JSON): the spec's `successfulTickleResponse`, or its
/// `failedTickleResponse` (`{"error": ...}` and nothing else of the success).
pub fn parse_tickle(body: &[u8]) -> Result<TickleStatus, Invalid> {
    let map = object(body)?;
    let failed = map.get("error").and_then(Value::as_str);
    let looks_successful = ["session", "iserver", "ssoExpires"]
        .iter()
        .any(|k| map.contains_key(*k));
    if let (Some(error), false) = (failed, looks_successful) {
        return Ok(TickleStatus {
            error: text(Some(error)).or_else(|| Some(Arc::from("tickle not processed"))),
            ..TickleStatus::default()
        });
    }
    let ok: SuccessfulTickleResponse = serde_json::from_value(Value::Object(map))
        .map_err(|_| "members of the wrong type for a tickle answer")?;
    Ok(TickleStatus {
        sso_expires: millis(ok.sso_expires.map(i64::from)),
        brokerage: ok
            .iserver
            .as_ref()
            .and_then(|i| i.auth_status.as_ref())
            .map(BrokerageStatus::from),
        error: None,
    })
}

/// A `sso/validate` answer (200, JSON). Reads `loginType` or IBKR's `LOGIN_TYPE` alike (both
/// ignored here).
pub fn parse_validate(body: &[u8]) -> Result<SsoValidation, Invalid> {
    let map = object(body)?;
    let v: SsoValidateResponse = serde_json::from_value(Value::Object(map))
        .map_err(|_| "members of the wrong type for a validate answer")?;
    Ok(SsoValidation {
        valid: v.result.unwrap_or(false),
        user_name: text(v.user_name.as_deref()),
        credential: text(v.credential.as_deref()),
        ip: text(v.ip.as_deref()),
        expires: millis(v.expires.map(i64::from)),
        is_master: v.is_master,
    })
}

/// A brokerage status answer (`ssodh/init`, `auth/status`; 200, JSON).
pub(crate) fn parse_brokerage(body: &[u8]) -> Result<BrokerageStatus, Invalid> {
    let map = object(body)?;
    let s: BrokerageSessionStatus = serde_json::from_value(Value::Object(map))
        .map_err(|_| "members of the wrong type for a brokerage status")?;
    Ok(BrokerageStatus::from(&s))
}

/// The sso-sessions answer: the SSO bearer.
pub(crate) fn parse_created(body: &[u8]) -> Result<secrecy::SecretString, Invalid> {
    let map = object(body)?;
    let created: CreateSessionResponse = serde_json::from_value(Value::Object(map))
        .map_err(|_| "members of the wrong type for an SSO session")?;
    let token = created.access_token;
    if token.is_empty() || token.len() > 16 * 1024 || token.chars().any(|c| c.is_control()) {
        return Err("no usable access_token");
    }
    Ok(secrecy::SecretString::from(token))
}

/// IBKR's explanation of a refusal: a problem's `detail` or `title`, or an `error` member.
pub(crate) fn refusal_detail(body: &[u8]) -> Option<Arc<str>> {
    let map = object(body).ok()?;
    ["detail", "error", "message", "title"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .and_then(|s| text(Some(s)))
}

#[cfg(test)]
mod tests;
