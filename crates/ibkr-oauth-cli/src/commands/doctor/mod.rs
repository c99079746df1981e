//! `ibkr-oauth doctor`: checks a setup in the order a request needs it, one line a check,
//! passed or failed with what to do: the settings and where each came from, the key, the
//! public key's JWK and thumbprint, the clock against the server's `Date`, a token request,
//! the scopes granted against those asked, and IBKR's echo endpoints with the token. On a
//! failure it prints the response's request id, to quote to IBKR. With a username
//! (`--username`, `IBKR_USERNAME`) and the public IP (`--ip`, `IBKR_SESSION_IP`), the session
//! too: sso-sessions, sso/validate (username and IP echoed back), the brokerage session, and a
//! competing session, each with what to do when it fails. The exit code is that of
//! the first failing check's class (see [`crate::exit`]).

mod echo;
pub(crate) mod hints;
mod report;
mod session;

use std::io::Write;
use std::time::SystemTime;

use ibkr_oauth::{PrivateKey, Signer, Token};
use serde_json::json;

pub use report::{Check, Report, Status};

use super::{describe_key, emit};
use crate::cli::DoctorArgs;
use crate::config::Settings;
use crate::error::Error;
use crate::exit;
use crate::output::{self, LocalTime};

/// The most the local clock may differ from the server's: assertions live about 30 seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 30;

/// Runs every check, prints the report, and fails with the first failure's exit code.
///
/// # Errors
/// [`Error::ChecksFailed`] when a check fails; [`Error::Output`] when the report cannot be
/// written.
pub async fn run(args: &DoctorArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    let settings = Settings::new(&args.signer, Some(&args.request))
        .map(|s| s.with_session(args.username.as_deref(), args.ip.as_deref()));
    let (report, base_url) = checks(settings, local).await;
    let text = if args.json {
        format!("{:#}\n", report.json(json!({ "base_url": base_url })))
    } else {
        report.text(&format!(
            "ibkr-oauth doctor: checking the setup against {base_url}"
        ))
    };
    emit(out, &text)?;
    match report.first_failure() {
        Some(first) => Err(Error::ChecksFailed {
            first: first.name,
            code: report.exit_code(),
        }),
        None => Ok(()),
    }
}

/// The report's first line.
pub fn heading(base_url: &str) -> String {
    format!("ibkr-oauth doctor: checking the setup against {base_url}")
}

/// The checks with `settings`, in order, and the base URL they ran against.
pub async fn checks(settings: Result<Settings, Error>, local: &LocalTime) -> (Report, String) {
    let mut report = Report::default();
    let mut settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            report.push(failure("settings", &error, "fix the variable it names"));
            skip_rest(&mut report, "settings", 1);
            return (report, "(unknown)".to_owned());
        }
    };
    let base_url = settings.base_url().to_owned();
    report.push(settings_check(&settings));

    // The key, and the signer made with it.
    let key = match settings.key() {
        Ok(key) => key,
        Err(error) => {
            report.push(failure(
                "key",
                &error,
                "fix the key file or variable it names",
            ));
            skip_rest(&mut report, "key", 2);
            return (report, base_url);
        }
    };
    let signer = if settings.missing().is_empty() {
        match settings.signer() {
            Ok(signer) => Some(signer),
            Err(error) => {
                report.push(failure(
                    "key",
                    &error,
                    "choose an algorithm the key supports",
                ));
                skip_rest(&mut report, "key", 2);
                return (report, base_url);
            }
        }
    } else {
        None
    };
    let algorithm = match (&signer, settings.algorithm()) {
        (Some(signer), _) => signer.algorithm(),
        (None, Ok(algorithm)) => algorithm.unwrap_or(key.key_type().default_algorithm()),
        (None, Err(error)) => {
            report.push(failure("key", &error, "fix the variable it names"));
            skip_rest(&mut report, "key", 2);
            return (report, base_url);
        }
    };
    report.push(Check::passed(
        "key",
        format!(
            "{} from {}, signs {algorithm}",
            describe_key(&key),
            key.source()
        ),
    ));
    report.push(public_key_check(&key, settings.key_id(), algorithm));

    // The token request: one attempt, as the server answers it.
    let signer = match signer {
        Some(signer) => signer,
        None => {
            skip_rest(&mut report, "settings", 4);
            return (report, base_url);
        }
    };
    let outcome = request_token(&settings, &signer).await;
    let received = SystemTime::now();
    // Transport: no answer at all; a configuration error: no request left.
    let answered = match &outcome {
        Ok(_) => true,
        Err(Error::Sdk(sdk)) => !matches!(
            sdk.kind(),
            ibkr_oauth::ErrorKind::Transport | ibkr_oauth::ErrorKind::Configuration
        ),
        Err(_) => false,
    };
    let (server_date, token_check, token) = match outcome {
        Ok(token) => {
            let check = Check::passed(
                "token",
                format!(
                    "{} granted a {} token (expires {})",
                    settings.client().map(|c| c.token_url()).unwrap_or_default(),
                    token
                        .token_type()
                        .map_or("typeless".into(), |t| ibkr_oauth::sanitize(t, 32)),
                    local.describe(token.expires_at(), SystemTime::now())
                ),
            );
            (token.server_date(), check, Some(token))
        }
        Err(error) => {
            let date = match &error {
                Error::Sdk(sdk) => sdk.server_date(),
                _ => None,
            };
            let check = match &error {
                Error::Sdk(sdk) => {
                    let check = Check::failed(
                        "token",
                        exit::code(&error),
                        exit::one_line(&exit::chain(&error)),
                    );
                    match hints::token(sdk, signer.key_id()) {
                        Some(hint) => check.hint(hint),
                        None => check,
                    }
                    .request_id(echo::request_id(sdk))
                }
                _ => failure("token", &error, "fix the setting it names"),
            };
            (date, check, None)
        }
    };
    report.push(clock_check(server_date, received, answered));
    report.push(token_check);

    let Some(token) = token else {
        skip_rest(&mut report, "token", 3);
        return (report, base_url);
    };
    report.push(scopes_check(settings.scope(), &token));
    echo::checks(&mut report, &settings, &signer, token.clone()).await;
    if session::wanted(&settings) {
        session::checks(&mut report, &settings, &signer, token).await;
    }
    (report, base_url)
}

/// Settings present, and where each came from.
fn settings_check(settings: &Settings) -> Check {
    let origins = settings
        .origins()
        .into_iter()
        .map(|(name, origin)| format!("{name} ({origin})"))
        .collect::<Vec<_>>()
        .join(", ");
    let missing = settings.missing();
    if missing.is_empty() {
        Check::passed("settings", origins)
    } else {
        Check::failed("settings", exit::USAGE, missing.join("; ")).hint(format!("from: {origins}"))
    }
}

/// The public JWK and its RFC 7638 thumbprint, to compare with what was registered.
fn public_key_check(key: &PrivateKey, kid: &str, algorithm: ibkr_oauth::Algorithm) -> Check {
    match (key.public_jwk(kid, algorithm), key.thumbprint()) {
        (Ok(jwk), Ok(thumbprint)) => Check::passed(
            "public key",
            format!("RFC 7638 thumbprint {thumbprint}; JWK {jwk}"),
        ),
        (Err(error), _) | (_, Err(error)) => failure(
            "public key",
            &Error::from(error),
            "the key cannot be shown as a JWK",
        ),
    }
}

/// The local clock against the server's `Date`; `answered` says whether the server answered at
/// all (no answer is not a missing header).
fn clock_check(server: Option<SystemTime>, local: SystemTime, answered: bool) -> Check {
    let Some(server) = server else {
        let why = if answered {
            "no Date header in the server's answer to compare with"
        } else {
            "no answer from the server to compare its clock with (see the token check)"
        };
        return Check::skipped("clock", why);
    };
    let (ahead, skew) = match local.duration_since(server) {
        Ok(d) => ("ahead of", d),
        Err(e) => ("behind", e.duration()),
    };
    let detail = format!(
        "the local clock is {} {ahead} the server's (its Date: {})",
        output::duration(skew),
        httpdate_of(server)
    );
    if skew.as_secs() <= MAX_CLOCK_SKEW_SECS {
        Check::passed(
            "clock",
            format!("within {}s of the server's", skew.as_secs()),
        )
    } else {
        Check::failed("clock", exit::USAGE, detail).hint(format!(
            "assertions live about 30 seconds, so more than {MAX_CLOCK_SKEW_SECS}s off is \
             refused: sync the clock (NTP)"
        ))
    }
}

fn httpdate_of(at: SystemTime) -> String {
    LocalTime::utc()
        .format(at)
        .unwrap_or_else(|| "?".to_owned())
}

/// The scopes granted against those asked.
fn scopes_check(asked: Option<&str>, token: &Token) -> Check {
    let granted: Vec<&str> = token.scopes().collect();
    let shown = ibkr_oauth::sanitize(&granted.join(" "), 1024);
    let Some(asked) = asked else {
        return Check::passed("scopes", format!("none asked; granted {:?}", shown))
            .hint("ask for \"echo.read echo.write\" (--scope) to check the echo endpoints too");
    };
    let missing: Vec<&str> = asked
        .split_ascii_whitespace()
        .filter(|s| !granted.contains(s))
        .collect();
    if missing.is_empty() {
        Check::passed("scopes", format!("granted {shown:?}, as asked"))
    } else {
        Check::failed(
            "scopes",
            exit::REFUSED,
            format!(
                "asked for {:?}, granted {shown:?}: {:?} missing",
                ibkr_oauth::sanitize(asked, 1024),
                ibkr_oauth::sanitize(&missing.join(" "), 1024)
            ),
        )
        .hint("ask IBKR to grant the missing scopes to this client, or stop asking for them")
    }
}

async fn request_token(settings: &Settings, signer: &Signer) -> Result<Token, Error> {
    let client = settings.client()?;
    let request = settings.request(signer)?;
    Ok(client.request_token(&request).await?)
}

/// A failed check for `error`: its message (one line, sanitised), its exit code, and `hint`.
fn failure(name: &'static str, error: &Error, hint: &str) -> Check {
    Check::failed(name, exit::code(error), exit::one_line(&exit::chain(error))).hint(hint)
}

/// Marks the checks after the `done`-th as skipped because `because` failed.
fn skip_rest(report: &mut Report, because: &str, done: usize) {
    const ALL: [&str; 8] = [
        "settings",
        "key",
        "public key",
        "clock",
        "token",
        "scopes",
        "echo/https",
        "echo/signed-jwt",
    ];
    let have = report.checks.len().max(done);
    for name in ALL.iter().skip(have) {
        report.push(Check::skipped(
            name,
            format!("needs the {because} check to pass"),
        ));
    }
}
