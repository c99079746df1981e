//! `ibkr-oauth jwk`: the public key of a private key as a JWK (with `kid`, `alg`, `use`), and
//! its RFC 7638 thumbprint, to compare with what was registered with IBKR.

use std::io::Write;

use ibkr_oauth::PrivateKey;
use serde_json::{Value, json};

use super::{describe_key, emit};
use crate::cli::{JwkArgs, SignerArgs};
use crate::config::Settings;
use crate::error::Error;

/// Reads the key of `args` and prints its public JWK and thumbprint.
///
/// # Errors
/// A missing or unreadable key; an `--alg` the key cannot sign.
pub fn run(args: &JwkArgs, out: &mut dyn Write) -> Result<(), Error> {
    let signer_args = SignerArgs {
        client_id: None,
        key_id: args.key_id.clone(),
        private_key: args.private_key.clone(),
        audience: None,
        alg: args.alg,
    };
    let mut settings = Settings::new(&signer_args, None)?;
    let key = settings.key()?;
    let algorithm = settings
        .algorithm()?
        .unwrap_or(key.key_type().default_algorithm());
    let jwk = key.public_jwk(settings.key_id(), algorithm)?;
    let thumbprint = key.thumbprint()?;
    let text = if args.json {
        format!("{:#}\n", json!({ "jwk": jwk, "thumbprint": thumbprint }))
    } else {
        describe(&key, &jwk, &thumbprint)
    };
    emit(out, &text)
}

/// The JWK and thumbprint as `keygen` and `jwk` print them.
pub(crate) fn describe(key: &PrivateKey, jwk: &Value, thumbprint: &str) -> String {
    format!(
        "public JWK of the {} key (register it, or compare it with the one registered):\n{jwk:#}\n\
         RFC 7638 thumbprint (SHA-256): {thumbprint}\n",
        describe_key(key)
    )
}
