//! What to do about a failed request, in a user's words. The problem detail is IBKR's (or the
//! sandbox's) free text, so these are suggestions keyed on common words; the detail itself is
//! always printed beside them. `token`'s errors carry the token hints too.

use ibkr_oauth::{Error, ErrorKind, env_vars};

/// The hint for a failed token request, where the error's own message does not already say
/// what to do (a transport failure or an unusable answer does: no hint, said once).
pub fn token(error: &Error, kid: &str) -> Option<String> {
    let text = error.to_string().to_ascii_lowercase();
    Some(match error.kind() {
        ErrorKind::Refused if text.contains("kid") && text.contains("unknown") => format!(
            "no key is registered under kid {kid:?} for this client: set {} (or --kid) to the \
             kid the public key was registered under, or register it under {kid:?}",
            env_vars::KEY_ID
        ),
        ErrorKind::Refused if text.contains("does not verify") || text.contains("signature") => {
            "the key registered under this kid is not this key: compare the thumbprint of this key \
             (`ibkr-oauth jwk`) with the registered key's, and register this public key if they \
             differ"
                .to_owned()
        }
        ErrorKind::Refused if text.contains("scope") => format!(
            "ask only for scopes this client may have ({} or --scope), or ask IBKR to grant the \
             missing one",
            env_vars::SCOPE
        ),
        ErrorKind::Refused
            if text.contains(" exp ") || text.contains(" iat ") || text.contains("expired") =>
        {
            "the assertion's times were refused: sync the clock (NTP); `ibkr-oauth doctor` \
             compares it with the server's"
                .to_owned()
        }
        ErrorKind::Refused if text.contains("client") => format!(
            "check the client id ({}) against the one IBKR gave you",
            env_vars::CLIENT_ID
        ),
        ErrorKind::Refused => {
            "check the client id, the kid and the public key registered with IBKR".to_owned()
        }
        _ => return None,
    })
}

/// The hint for a failed echo call that needed `scope`, where the error's own message does not
/// already say what to do. The API's refusal says it for a 401 or 403 (and quotes the request
/// id), a transport failure and an unusable answer say it too: the hint only adds what the
/// check knows and the message cannot (the scope it needed; the signed body).
pub fn echo(error: &Error, scope: &str) -> Option<String> {
    let text = error.to_string().to_ascii_lowercase();
    match error.kind() {
        ErrorKind::Refused if text.contains("(403 ") => Some(format!("this check needs {scope}")),
        ErrorKind::Refused if text.contains("signed") || text.contains("verif") => Some(
            "the signed body was refused: the key registered under this kid is not this key; \
             compare thumbprints (`ibkr-oauth jwk`)"
                .to_owned(),
        ),
        _ => None,
    }
}
