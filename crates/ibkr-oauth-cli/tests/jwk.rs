//! `ibkr-oauth jwk` and `keygen`: the public JWK and its RFC 7638 thumbprint; encrypted keys
//! through `IBKR_PRIVATE_KEY_PASSPHRASE`.

mod common;

use common::{TestSandbox, cli, run};
use ibkr_oauth::{Algorithm, PrivateKey};
use serde_json::Value;

#[test]
fn jwk_prints_the_public_jwk_and_its_thumbprint() {
    let sandbox = TestSandbox::start();
    let key = PrivateKey::from_pem_file(&sandbox.private_key).unwrap();
    let out = run(sandbox.cli().args(["jwk", "--json"]));
    let printed: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    assert_eq!(printed["thumbprint"], key.thumbprint().unwrap());
    let jwk = &printed["jwk"];
    assert_eq!(jwk["kid"], common::KEY_ID);
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kty"], "EC");
    assert!(jwk.get("d").is_none(), "{jwk}");
    sandbox.assert_no_secret(&out);

    let out = run(sandbox.cli().args(["jwk", "--kid", "next"]));
    let text = out.assert_success();
    assert!(text.contains("\"kid\": \"next\""), "{text}");
    assert!(
        text.contains(&format!(
            "RFC 7638 thumbprint (SHA-256): {}",
            key.thumbprint().unwrap()
        )),
        "{text}"
    );
}

#[test]
fn keygen_prints_the_jwk_and_thumbprint_of_the_key_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cli()
        .args(["keygen", "--alg", "EdDSA", "--kid", "k2", "--out"])
        .arg(dir.path()));
    let text = out.assert_success();
    let key = PrivateKey::from_pem_file(dir.path().join("private.pem")).unwrap();
    assert!(text.contains(&key.thumbprint().unwrap()), "{text}");
    assert!(
        text.contains("\"kty\": \"OKP\"") && text.contains("\"kid\": \"k2\""),
        "{text}"
    );
}

/// An encrypted PKCS#8 copy of `pem` made by `openssl`, or None where it is not installed.
fn encrypt_with_openssl(
    dir: &std::path::Path,
    pem: &str,
    passphrase: &str,
) -> Option<std::path::PathBuf> {
    let plain = dir.join("plain.pem");
    let encrypted = dir.join("encrypted.pem");
    std::fs::write(&plain, pem).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(&plain)
        .arg("-out")
        .arg(&encrypted)
        .arg("-passout")
        .arg(format!("pass:{passphrase}"))
        .status()
        .ok()?;
    std::fs::remove_file(&plain).unwrap();
    status.success().then_some(encrypted)
}

#[test]
fn an_encrypted_key_is_read_with_the_passphrase_variable() {
    let sandbox = TestSandbox::start_with(Algorithm::ES256);
    let Some(encrypted) =
        encrypt_with_openssl(sandbox.dir.path(), &sandbox.private_pem, "s3cret pass")
    else {
        eprintln!("openssl is not installed: skipped");
        return;
    };
    assert!(
        std::fs::read_to_string(&encrypted)
            .unwrap()
            .contains("BEGIN ENCRYPTED PRIVATE KEY")
    );

    // No passphrase, and stdin is not a terminal: a configuration error naming the variable.
    let out = run(sandbox
        .cli()
        .env("IBKR_PRIVATE_KEY", &encrypted)
        .stdin(std::process::Stdio::null())
        .arg("token"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("IBKR_PRIVATE_KEY_PASSPHRASE"), "{stderr}");

    // A wrong one.
    let out = run(sandbox
        .cli()
        .env("IBKR_PRIVATE_KEY", &encrypted)
        .env("IBKR_PRIVATE_KEY_PASSPHRASE", "wrong")
        .arg("token"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("passphrase is wrong"), "{stderr}");

    // The right one: a token, and the doctor passes.
    let out = run(sandbox
        .cli()
        .env("IBKR_PRIVATE_KEY", &encrypted)
        .env("IBKR_PRIVATE_KEY_PASSPHRASE", "s3cret pass")
        .arg("token"));
    out.assert_success();
    assert!(!out.all().contains("s3cret"), "{out:#?}");
    let out = run(sandbox
        .cli()
        .env("IBKR_PRIVATE_KEY", &encrypted)
        .env("IBKR_PRIVATE_KEY_PASSPHRASE", "s3cret pass")
        .arg("doctor"));
    let text = out.assert_success();
    assert!(
        text.contains("passphrase (variable IBKR_PRIVATE_KEY_PASSPHRASE)"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn jwk_given_a_public_key_says_to_give_the_private_one_without_naming_a_signer() {
    let sandbox = TestSandbox::start();
    let key = PrivateKey::from_pem_file(&sandbox.private_key).unwrap();
    let public = sandbox.dir.path().join("public.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let out = run(cli().args(["jwk", "--private-key"]).arg(&public));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("holds a public key"), "{stderr}");
    assert!(
        stderr.contains("give the private key that belongs to it"),
        "{stderr}"
    );
    assert!(!stderr.contains("signer"), "jwk signs nothing: {stderr}");
}
