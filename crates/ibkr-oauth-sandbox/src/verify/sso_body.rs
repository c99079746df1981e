//! The claims of `POST /gw/api/v1/sso-sessions`'s signed body, once its signature, `iss` and
//! times have passed the Signed JWT checks (`signed_body`).
//!
//! Two spellings are accepted, as IBKR's servers do: what working clients send (`ip`,
//! `credential`, `iss`, `iat`, `exp`: no `jti`, no `service`) and the names of IBKR's published
//! schema (`credential`, `iss`, `jti`, `service`, `userIp`). `credential` is required; the IP is
//! optional (the schema marks `userIp` optional) but must be an IP address when given, and `ip`
//! and `userIp` must agree when both are.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{jws, quote};

/// The longest `credential` accepted (IBKR usernames are short).
const MAX_CREDENTIAL_CHARS: usize = 64;

/// What an accepted body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SsoClaims {
    pub(crate) credential: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) jti: Option<String>,
    /// `exp`, for how long a `jti` is remembered.
    pub(crate) exp: Option<i64>,
}

/// Reads the session claims; a refusal is the `detail` of a `400`.
pub(crate) fn read(claims: &Map<String, Value>) -> Result<SsoClaims, String> {
    let refuse = |what: String| format!("signed body: {what}");
    let credential = match claims.get("credential") {
        Some(Value::String(c)) if !c.trim().is_empty() => c,
        Some(Value::String(_)) => return Err(refuse("credential is empty".into())),
        Some(_) => return Err(refuse("credential is not a string".into())),
        None => {
            return Err(refuse(
                "credential missing; sign the IBKR username as \"credential\"".into(),
            ));
        }
    };
    if credential.chars().count() > MAX_CREDENTIAL_CHARS || credential.chars().any(char::is_control)
    {
        return Err(refuse(format!(
            "credential {} is not a username",
            quote(credential)
        )));
    }
    let ip_claim = |name: &str| -> Result<Option<IpAddr>, String> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| refuse(format!("{name} {} is not an IP address", quote(text)))),
            Some(_) => Err(refuse(format!("{name} is not a string"))),
        }
    };
    let ip = ip_claim("ip")?;
    let user_ip = ip_claim("userIp")?;
    if let (Some(a), Some(b)) = (ip, user_ip) {
        if a != b {
            return Err(refuse(format!(
                "ip {a} and userIp {b} disagree; send one of them"
            )));
        }
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(jti)) if !jti.is_empty() => Some(jti.clone()),
        Some(_) => return Err(refuse("jti is not a non-empty string".into())),
    };
    match claims.get("service") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(refuse("service is not a string".into())),
    }
    Ok(SsoClaims {
        credential: credential.clone(),
        ip: ip.or(user_ip),
        jti,
        exp: jws::numeric_date(claims, "exp"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read_json(value: Value) -> Result<SsoClaims, String> {
        read(value.as_object().unwrap())
    }

    #[test]
    fn accepts_both_spellings() {
        let working = read_json(json!({
            "ip": "203.0.113.7", "credential": "alice", "iss": "c", "iat": 1, "exp": 86401
        }))
        .unwrap();
        assert_eq!(working.credential, "alice");
        assert_eq!(working.ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!((working.jti, working.exp), (None, Some(86401)));
        let spec = read_json(json!({
            "credential": "alice", "iss": "c", "jti": "j1", "service": "AM_LOGIN",
            "userIp": "2001:db8::1"
        }))
        .unwrap();
        assert_eq!(spec.ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(spec.jti.as_deref(), Some("j1"));
        assert_eq!(read_json(json!({"credential": "alice"})).unwrap().ip, None);
    }

    #[test]
    fn refusals_name_the_claim() {
        let cases = [
            (
                json!({}),
                "signed body: credential missing; sign the IBKR username as \"credential\"",
            ),
            (
                json!({"credential": ""}),
                "signed body: credential is empty",
            ),
            (
                json!({"credential": 7}),
                "signed body: credential is not a string",
            ),
            (
                json!({"credential": "a", "ip": "localhost"}),
                "signed body: ip \"localhost\" is not an IP address",
            ),
            (
                json!({"credential": "a", "ip": "1.1.1.1", "userIp": "2.2.2.2"}),
                "signed body: ip 1.1.1.1 and userIp 2.2.2.2 disagree; send one of them",
            ),
            (
                json!({"credential": "a", "jti": ""}),
                "signed body: jti is not a non-empty string",
            ),
            (
                json!({"credential": "a", "service": 1}),
                "signed body: service is not a string",
            ),
        ];
        for (claims, detail) in cases {
            assert_eq!(read_json(claims).unwrap_err(), detail);
        }
    }
}
