//! Generates an RSA key, signs one client assertion with it and writes, into the folder given as
//! the first argument: `public.pem` (the key to verify with), `assertion.jwt` (the compact
//! JWS) and `expected.json` (the client id, key id, audience and lifetimes it was signed with).
//! `scripts/pyjwt-interop` verifies the result with PyJWT.
//!
//! ```text
//! cargo run -p ibkr-oauth --example sign_assertion -- OUT_DIR [RS256|PS256|ES256|EdDSA]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ibkr_oauth::{Algorithm, PrivateKey, Signer};

const CLIENT_ID: &str = "interop-client";
const KEY_ID: &str = "main";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sign_assertion: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: sign_assertion OUT_DIR [ALG]")?);
    let algorithm: Algorithm = match args.next() {
        Some(name) => name.parse().map_err(|e| format!("{e}"))?,
        None => Algorithm::RS256,
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let key = PrivateKey::generate(algorithm).map_err(|e| e.to_string())?;
    let public_pem = key.public_key_pem();
    let signer = Signer::builder(CLIENT_ID, KEY_ID, key)
        .algorithm(algorithm)
        .build()
        .map_err(|e| e.to_string())?;
    let assertion = signer.sign().map_err(|e| e.to_string())?;

    let expected = format!(
        "{{\"alg\":\"{}\",\"kid\":\"{}\",\"client_id\":\"{}\",\"aud\":\"{}\",\
         \"clock_skew\":{},\"lifetime\":{}}}\n",
        signer.algorithm(),
        signer.key_id(),
        signer.client_id(),
        signer.audience(),
        signer.clock_skew().as_secs(),
        signer.lifetime().as_secs(),
    );
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("public.pem", &public_pem)?;
    // A test assertion for a throw-away key, written out on purpose for the verifier.
    write("assertion.jwt", assertion.expose_secret())?;
    write("expected.json", &expected)?;
    println!(
        "wrote public.pem, assertion.jwt, expected.json to {}",
        dir.display()
    );
    Ok(())
}
