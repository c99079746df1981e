//! `ibkr-oauth assertion`: a freshly signed client assertion, summarised, decoded or raw.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{decode_jws, emit};
use crate::cli::AssertionArgs;
use crate::config::Settings;
use crate::error::Error;
use crate::output::{self, LocalTime};

/// Signs an assertion with the settings of `args` and prints it.
///
/// # Errors
/// Configuration, key and signing errors.
pub fn run(args: &AssertionArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    let signer = Settings::new(&args.signer, None)?.signer()?;
    let assertion = signer.sign()?;
    let compact = assertion.expose_secret();
    if args.raw {
        return emit(out, &format!("{compact}\n"));
    }
    let (header, claims) = decode_jws(compact)?;
    let text = if args.decode {
        let mut decoded = json!({ "header": header, "claims": claims });
        if let (true, Some(map)) = (args.reveal, decoded.as_object_mut()) {
            map.insert("assertion".into(), Value::String(compact.to_owned()));
        }
        format!("{decoded:#}\n")
    } else {
        let now = SystemTime::now();
        let at = |name: &str| -> String {
            match claims.get(name).and_then(Value::as_u64) {
                Some(secs) => local.describe(UNIX_EPOCH + Duration::from_secs(secs), now),
                None => "(absent)".to_owned(),
            }
        };
        let hint = if args.reveal {
            ""
        } else {
            "; --raw prints it, --reveal shows it here"
        };
        format!(
            "client assertion for client {} (kid {}, {}, aud {})\n  assertion: {}{hint}\n  \
             header:    {header}\n  claims:    {claims}\n  issued at: {}\n  expires:   {}\n",
            signer.client_id(),
            signer.key_id(),
            signer.algorithm(),
            signer.audience(),
            output::secret(compact, args.reveal),
            at("iat"),
            at("exp"),
        )
    };
    emit(out, &text)
}
