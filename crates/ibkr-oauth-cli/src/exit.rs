//! The exit codes, and the one place that maps every error to its code and prints it.
//!
//! | code | constant | when |
//! |---|---|---|
//! | 0 | [`SUCCESS`] | the command did its job |
//! | 1 | [`FAILURE`] | an internal failure: the crypto backend, the runtime, writing the output |
//! | 2 | [`USAGE`] | usage or configuration: a flag, a missing setting, a key file, a base URL, an existing file without `--force` |
//! | 3 | [`REFUSED`] | the server refused the request: an RFC 9457 problem (or an RFC 6749 error) |
//! | 4 | [`TRANSPORT`] | no answer: no connection, a timeout, the connection broke |
//! | 5 | [`INVALID_RESPONSE`] | an answer that is neither a token nor a problem: an HTML page, a redirect, a malformed token |

use std::io::Write;

use crate::error::Error;

/// The command did its job.
pub const SUCCESS: u8 = 0;
/// An internal failure (crypto backend, runtime, writing the output).
pub const FAILURE: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// The server refused the request (a problem document).
pub const REFUSED: u8 = 3;
/// Transport failure: no connection, timeout, connection broken.
pub const TRANSPORT: u8 = 4;
/// The server's answer is neither a token nor a problem.
pub const INVALID_RESPONSE: u8 = 5;

/// The exit code of `error`.
pub fn code(error: &Error) -> u8 {
    match error {
        Error::Config(_)
        | Error::FileExists { .. }
        | Error::File { .. }
        | Error::Agent(_)
        | Error::Sink(_) => USAGE,
        Error::Sdk(error) | Error::Request { error, .. } => sdk_code(error),
        Error::Sandbox(error) => sandbox_code(error),
        Error::ChecksFailed { code, .. } => *code,
        Error::SessionEnded(_) => REFUSED,
        Error::Session(_) => TRANSPORT,
        Error::Output(_)
        | Error::Runtime(_)
        | Error::Signal(_)
        | Error::Exec(_)
        | Error::Internal(_) => FAILURE,
    }
}

/// The exit code of an SDK error, by its kind.
pub fn sdk_code(error: &ibkr_oauth::Error) -> u8 {
    use ibkr_oauth::ErrorKind as K;
    match error.kind() {
        K::Configuration | K::Key => USAGE,
        K::Refused => REFUSED,
        K::Transport => TRANSPORT,
        K::InvalidResponse => INVALID_RESPONSE,
        // Internal, and a kind added to the SDK later: not known to be the user's doing.
        _ => FAILURE,
    }
}

/// The exit code of a sandbox error: its configuration (keys, settings, port) is the user's.
fn sandbox_code(error: &ibkr_oauth_sandbox::Error) -> u8 {
    use ibkr_oauth_sandbox::Error as E;
    match error {
        E::InvalidPublicKey { .. }
        | E::KeyAlgorithmMismatch { .. }
        | E::DuplicateKid { .. }
        | E::DuplicateClient { .. }
        | E::ClientWithoutKey { .. }
        | E::NoClient
        | E::InvalidSetting { .. }
        | E::Bind { .. } => USAGE,
        _ => FAILURE,
    }
}

/// `error` and its causes as one text (`what: cause: cause`). Each message says its own part
/// once; a cause that an outer message already quotes (another crate's habit) is not repeated.
pub fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// Prints `error` and its causes to `stderr` as one line (`ibkr-oauth: what: cause`) and
/// returns its exit code.
pub fn report(error: &Error, stderr: &mut dyn Write) -> u8 {
    // Nothing more can be done if stderr itself is gone.
    let _ = writeln!(stderr, "ibkr-oauth: {}", one_line(&chain(error)));
    let _ = stderr.flush();
    code(error)
}

/// Prints a clap outcome: help and version to stdout (exit 0), usage errors to stderr (exit 2).
pub fn for_clap_error(error: &clap::Error, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    // clap quotes what it could not parse: a key or token pasted in the wrong place.
    let rendered = redact_secrets(&error.render().to_string());
    if error.use_stderr() {
        let _ = write!(stderr, "{rendered}");
        let _ = stderr.flush();
        USAGE
    } else {
        let _ = write!(stdout, "{rendered}");
        let _ = stdout.flush();
        SUCCESS
    }
}

/// The SDK's one sanitiser: control characters (line breaks included) become spaces, runs of
/// spaces one space, JWT-shaped words `[redacted]`: a message from a server cannot break the
/// line or drive the terminal.
pub fn one_line(text: &str) -> String {
    ibkr_oauth::sanitize(text, 4096)
}

/// Replaces PEM blocks and JWT-shaped strings (access tokens, assertions) with `[redacted]`.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let pem = rest.find("-----BEGIN");
        let jwt = rest.find("eyJ");
        let start = match (pem, jwt) {
            (Some(p), Some(j)) => p.min(j),
            (Some(p), None) => p,
            (None, Some(j)) => j,
            (None, None) => break,
        };
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let end = if pem == Some(start) {
            pem_block_len(from)
        } else {
            let len = from
                .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .unwrap_or(from.len());
            if from.get(..len).is_some_and(|s| s.contains('.')) {
                len
            } else {
                // Not a JWT: keep the `eyJ` and look further.
                out.push_str("eyJ");
                rest = from.get(3..).unwrap_or_default();
                continue;
            }
        };
        out.push_str(REDACTED);
        rest = from.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The length of the PEM block at the start of `text`: up to the end of its `-----END ...-----`
/// line, or of the quoted value (or the text) when the block is cut short.
fn pem_block_len(text: &str) -> usize {
    if let Some(end) = text.find("-----END") {
        let after = end + "-----END".len();
        if let Some(close) = text.get(after..).and_then(|t| t.find("-----")) {
            return after + close + "-----".len();
        }
    }
    text.find('\'').unwrap_or(text.len())
}

const REDACTED: &str = crate::output::REDACTED;

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_clap_messages_are_redacted() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----";
        assert_eq!(
            redact_secrets(&format!("error: unexpected argument '{pem}' found")),
            "error: unexpected argument '[redacted]' found"
        );
        assert_eq!(
            redact_secrets("x 'eyJhbGciOi.eyJzdWIi.c2ln' y eyJ z '-----BEGIN cut"),
            "x '[redacted]' y eyJ z '[redacted]"
        );
        assert_eq!(redact_secrets("plain text"), "plain text");
    }

    use super::*;

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\nb\r\n\tc\u{1b}[31m  d "), "a b c [31m d");
    }

    #[test]
    fn sdk_errors_map_by_kind() {
        assert_eq!(
            sdk_code(
                &ibkr_oauth::ConfigError::Client(
                    ibkr_oauth::config_error::ClientSetting::ZeroTimeout
                )
                .into()
            ),
            USAGE
        );
        assert_eq!(sdk_code(&ibkr_oauth::Error::NoRuntime), USAGE);
        assert_eq!(sdk_code(&ibkr_oauth::Error::FetchAborted), FAILURE);
        let connect = ibkr_oauth::Error::custom(ibkr_oauth::ErrorKind::Transport, "refused", None);
        assert_eq!(sdk_code(&connect), TRANSPORT);
        assert_eq!(code(&Error::Config("x".into())), USAGE);
        assert_eq!(code(&connect.into()), TRANSPORT);
    }
}
