//! Reading keys: every accepted format, and every refusal with its own error variant that
//! names where the key came from and never prints key material.
//! (Long on purpose: one test per key format and per refusal.)

mod assertion_support;

use std::path::PathBuf;

use assertion_support::*;
use ibkr_oauth::key::{KeyOrigin, KeyType};
use ibkr_oauth::{Algorithm, PrivateKey};
use ibkr_oauth::{Error, KeyError};

fn file_source(name: &str) -> KeyOrigin {
    KeyOrigin::File(fixture(name))
}

#[test]
fn accepted_formats_have_the_right_type_and_size() {
    let cases = [
        ("rsa_pkcs8.pem", KeyType::Rsa, 2048),
        ("rsa_pkcs1.pem", KeyType::Rsa, 2048),
        ("ec_pkcs8.pem", KeyType::EcP256, 256),
        ("ec_sec1.pem", KeyType::EcP256, 256),
        ("ed25519_pkcs8.pem", KeyType::Ed25519, 256),
    ];
    for (name, key_type, bits) in cases {
        let key = PrivateKey::from_pem_file(fixture(name)).expect(name);
        assert_eq!(key.key_type(), key_type, "{name}");
        assert_eq!(key.bits(), bits, "{name}");
        assert_eq!(key.source(), &file_source(name));
        // The same key from a string: same public key, source named as the PEM string.
        let from_str = PrivateKey::from_pem(&fixture_text(name)).expect(name);
        assert_eq!(from_str.public_key_der(), key.public_key_der());
        assert_eq!(from_str.source(), &KeyOrigin::PemString);
    }
}

#[test]
fn derived_public_keys_match_openssl() {
    let pairs = [
        ("rsa_pkcs1.pem", "rsa.pub.pem"),
        ("ec_sec1.pem", "ec.pub.pem"),
        ("ed25519_pkcs8.pem", "ed25519.pub.pem"),
    ];
    for (private, public) in pairs {
        let key = PrivateKey::from_pem_file(fixture(private)).expect(private);
        assert_eq!(key.public_key_pem(), fixture_text(public), "{private}");
    }
}

#[test]
#[cfg(feature = "encrypted-keys")]
fn encrypted_pkcs8_decrypts_with_its_passphrase() {
    for (name, plain) in [
        ("rsa_encrypted.pem", "rsa_pkcs8.pem"),
        ("ec_encrypted_scrypt.pem", "ec_pkcs8.pem"),
        ("ed25519_encrypted.pem", "ed25519_pkcs8.pem"),
    ] {
        let key = PrivateKey::from_encrypted_pem_file(fixture(name), PASSPHRASE).expect(name);
        let expected = PrivateKey::from_pem_file(fixture(plain)).expect(plain);
        assert_eq!(key.public_key_der(), expected.public_key_der(), "{name}");
        let from_str = PrivateKey::from_encrypted_pem(&fixture_text(name), PASSPHRASE).expect(name);
        assert_eq!(from_str.public_key_der(), expected.public_key_der());
    }
    // A passphrase given for an unencrypted key is not needed, and not an error.
    PrivateKey::from_encrypted_pem(&fixture_text("rsa_pkcs8.pem"), PASSPHRASE).expect("plain key");
}

#[test]
fn lenient_pem_reading() {
    let pem = fixture_text("ec_pkcs8.pem");
    let crlf = pem.replace('\n', "\r\n");
    let with_preamble = format!("Bag Attributes\n    localKeyID: 01\n{pem}\n\n");
    let with_cert_first = format!("{}{pem}", fixture_text("certificate.pem"));
    for text in [crlf, with_preamble, with_cert_first] {
        let key = PrivateKey::from_pem(&text).expect("lenient");
        assert_eq!(key.key_type(), KeyType::EcP256);
    }
}

// ---- refusals: one variant each, naming the source ----

#[test]
fn empty_file_and_empty_string() {
    let dir = tempdir();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let err = PrivateKey::from_pem_file(&empty).expect_err("empty");
    assert!(
        matches!(&err, KeyError::Empty { origin } if *origin == KeyOrigin::File(empty.clone())),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty.pem"), "{err}");
    assert!(
        err.to_string().contains("BEGIN PRIVATE KEY"),
        "says what was expected: {err}"
    );
    let err = PrivateKey::from_pem(" \n\t").expect_err("blank");
    assert!(
        matches!(
            err,
            KeyError::Empty {
                origin: KeyOrigin::PemString
            }
        ),
        "{err:?}"
    );
}

#[test]
fn garbage_and_binary() {
    let err = PrivateKey::from_pem("this is not a key").expect_err("garbage");
    assert!(
        matches!(
            err,
            KeyError::NotPem {
                origin: KeyOrigin::PemString
            }
        ),
        "{err:?}"
    );
    let dir = tempdir();
    let binary = dir.join("key.der");
    std::fs::write(&binary, [0x30u8, 0x82, 0xff, 0xfe, 0x00, 0x80]).expect("write");
    let err = PrivateKey::from_pem_file(&binary).expect_err("binary");
    assert!(
        matches!(&err, KeyError::NotPem { origin } if *origin == KeyOrigin::File(binary.clone())),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("key.der") && err.to_string().contains("DER"),
        "{err}"
    );
}

#[test]
fn missing_file() {
    let path = PathBuf::from("/nonexistent/ibkr/private.pem");
    let err = PrivateKey::from_pem_file(&path).expect_err("missing");
    assert!(
        matches!(&err, KeyError::FileRead { origin, .. } if *origin == KeyOrigin::File(path.clone())),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/nonexistent/ibkr/private.pem"),
        "{err}"
    );
}

#[test]
fn oversized_file() {
    let dir = tempdir();
    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'A'; 1024 * 1024 + 1]).expect("write");
    let err = PrivateKey::from_pem_file(&big).expect_err("big");
    assert!(
        matches!(
            err,
            KeyError::FileTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Issue 20: a FIFO with no writer hung every command that loads the key.
#[test]
fn a_fifo_or_a_directory_is_refused_unopened() {
    let dir = tempdir();
    let fifo = dir.join("key.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Read on another thread, so that a hang fails the test instead of stalling it.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(PrivateKey::from_pem_file(&path).map(|_| ()));
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("from_pem_file blocked on the FIFO")
        .expect_err("a FIFO");
    assert!(
        matches!(&err, KeyError::NotAFile { origin } if *origin == KeyOrigin::File(fifo.clone())),
        "{err:?}"
    );
    let err = PrivateKey::from_pem_file(&dir).expect_err("a directory");
    assert!(matches!(err, KeyError::NotAFile { .. }), "{err:?}");
}

#[test]
fn public_key() {
    let err = PrivateKey::from_pem_file(fixture("rsa.pub.pem")).expect_err("public");
    assert!(
        matches!(&err, KeyError::IsPublic { origin } if *origin == file_source("rsa.pub.pem")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rsa.pub.pem") && err.to_string().contains("private key"),
        "{err}"
    );
    let pkcs1_public = "-----BEGIN RSA PUBLIC KEY-----\nMAo=\n-----END RSA PUBLIC KEY-----\n";
    assert!(matches!(
        PrivateKey::from_pem(pkcs1_public),
        Err(KeyError::IsPublic { .. })
    ));
}

#[test]
fn certificate() {
    let err = PrivateKey::from_pem_file(fixture("certificate.pem")).expect_err("certificate");
    assert!(
        matches!(&err, KeyError::IsCertificate { origin } if *origin == file_source("certificate.pem")),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate.pem"), "{err}");
}

#[test]
fn unsupported_pem_label() {
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n";
    let err = PrivateKey::from_pem(openssh).expect_err("openssh");
    assert!(
        matches!(&err, KeyError::FormatUnsupported { label, .. } if label == "OPENSSH PRIVATE KEY"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ssh-keygen"), "{err}");
}

#[test]
fn encrypted_without_passphrase() {
    let err = PrivateKey::from_pem_file(fixture("rsa_encrypted.pem")).expect_err("encrypted");
    assert!(
        matches!(&err, KeyError::Encrypted { origin } if *origin == file_source("rsa_encrypted.pem")),
        "{err:?}"
    );
    assert!(err.to_string().contains("from_encrypted_pem"), "{err}");
}

#[test]
#[cfg(feature = "encrypted-keys")]
fn wrong_passphrase() {
    for name in [
        "rsa_encrypted.pem",
        "ec_encrypted_scrypt.pem",
        "ed25519_encrypted.pem",
    ] {
        let err = PrivateKey::from_encrypted_pem_file(fixture(name), "not-the-passphrase")
            .expect_err("wrong passphrase");
        assert!(
            matches!(&err, KeyError::PassphraseWrong { origin } if *origin == file_source(name)),
            "{name}: {err:?}"
        );
    }
}

#[test]
#[cfg(feature = "encrypted-keys")]
fn unsupported_encryption_scheme() {
    let err =
        PrivateKey::from_encrypted_pem_file(fixture("rsa_encrypted_pkcs12_3des.pem"), PASSPHRASE)
            .expect_err("pkcs12 3des");
    assert!(
        matches!(&err, KeyError::EncryptionUnsupported { scheme, .. } if scheme.contains("1.2.840.113549.1.12.1.3")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rsa_encrypted_pkcs12_3des.pem"),
        "{err}"
    );
}

#[test]
fn legacy_pem_encryption() {
    let err = PrivateKey::from_encrypted_pem_file(fixture("rsa_legacy_encrypted.pem"), PASSPHRASE)
        .expect_err("legacy");
    assert!(matches!(err, KeyError::LegacyEncrypted { .. }), "{err:?}");
    let err = PrivateKey::from_pem_file(fixture("rsa_legacy_encrypted.pem")).expect_err("legacy");
    assert!(matches!(err, KeyError::LegacyEncrypted { .. }), "{err:?}");
}

#[test]
fn rsa_under_2048_bits() {
    for name in ["rsa1024_pkcs8.pem", "rsa1024_pkcs1.pem"] {
        let err = PrivateKey::from_pem_file(fixture(name)).expect_err("small RSA");
        assert!(
            matches!(&err, KeyError::RsaTooSmall { origin } if *origin == file_source(name)),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("2048"), "{err}");
    }
}

#[test]
fn unsupported_key_types_and_curves() {
    for (name, says) in [
        ("ec_p384_pkcs8.pem", "P-384"),
        ("ec_p384_sec1.pem", "P-384"),
        ("x25519_pkcs8.pem", "X25519"),
    ] {
        let err = PrivateKey::from_pem_file(fixture(name)).expect_err("unsupported type");
        assert!(
            matches!(&err, KeyError::TypeUnsupported { found, .. } if found.contains(says)),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn malformed_key_blocks() {
    let truncated_b64 = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC!!\n-----END PRIVATE KEY-----\n";
    let bad_der = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
    let bad_pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
    let pem = fixture_text("rsa_pkcs8.pem");
    let no_end = pem.replace("-----END PRIVATE KEY-----", "");
    for text in [truncated_b64, bad_der, bad_pkcs1, &no_end] {
        let err = PrivateKey::from_pem(text).expect_err("malformed");
        assert!(
            matches!(
                err,
                KeyError::Malformed {
                    origin: KeyOrigin::PemString,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn algorithm_mismatch_is_refused_at_build() {
    let rsa = PrivateKey::from_pem_file(fixture("rsa_pkcs8.pem")).expect("rsa");
    let ec = PrivateKey::from_pem_file(fixture("ec_pkcs8.pem")).expect("ec");
    let ed = PrivateKey::from_pem_file(fixture("ed25519_pkcs8.pem")).expect("ed");
    for (key, alg) in [
        (&rsa, Algorithm::ES256),
        (&rsa, Algorithm::EdDSA),
        (&ec, Algorithm::RS256),
        (&ec, Algorithm::PS256),
        (&ed, Algorithm::ES256),
        (&ed, Algorithm::RS256),
    ] {
        let err = ibkr_oauth::Signer::builder("client", "main", key.clone())
            .algorithm(alg)
            .build()
            .expect_err("mismatch");
        assert!(
            matches!(&err, Error::Key(e) if matches!(&**e, KeyError::AlgorithmMismatch { key_type, algorithm, .. }
                if *key_type == key.key_type() && *algorithm == alg)),
            "{err:?}"
        );
        assert!(err.to_string().contains(alg.as_str()), "{err}");
    }
}

/// Environment variables are set for a child run of this test binary (setting them in-process
/// needs `unsafe`, which the workspace forbids); the child runs `env_child` below.
#[test]
fn environment_variable_holding_pem_or_path() {
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "env_child", "--test-threads=1"])
        .env("IBKR_OAUTH_TEST_ENV_CHILD", "1")
        .env("IBKR_OAUTH_TEST_KEY_PEM", fixture_text("rsa_pkcs8.pem"))
        .env(
            "IBKR_OAUTH_TEST_KEY_ESCAPED",
            fixture_text("ec_pkcs8.pem").replace('\n', "\\n"),
        )
        .env("IBKR_OAUTH_TEST_KEY_PATH", fixture("ed25519_pkcs8.pem"))
        .env("IBKR_OAUTH_TEST_KEY_PUBLIC", fixture("rsa.pub.pem"))
        .env("IBKR_OAUTH_TEST_KEY_EMPTY", "")
        .env_remove("IBKR_OAUTH_TEST_KEY_UNSET")
        .status()
        .expect("child test runs");
    assert!(
        status.success(),
        "the env_child test failed; run it alone for details"
    );
}

#[test]
fn env_child() {
    if std::env::var_os("IBKR_OAUTH_TEST_ENV_CHILD").is_none() {
        return; // only meaningful inside environment_variable_holding_pem_or_path
    }
    let var = "IBKR_OAUTH_TEST_KEY_PEM";
    let key = PrivateKey::from_env(var).expect("pem in env");
    assert_eq!(key.key_type(), KeyType::Rsa);
    assert_eq!(
        key.source(),
        &KeyOrigin::EnvVar {
            name: var.into(),
            file: None
        }
    );

    let key = PrivateKey::from_env("IBKR_OAUTH_TEST_KEY_ESCAPED").expect("escaped pem");
    assert_eq!(key.key_type(), KeyType::EcP256);

    let var = "IBKR_OAUTH_TEST_KEY_PATH";
    let key = PrivateKey::from_env(var).expect("path in env");
    let file = Some(fixture("ed25519_pkcs8.pem"));
    assert_eq!(
        key.source(),
        &KeyOrigin::EnvVar {
            name: var.into(),
            file
        }
    );

    let var = "IBKR_OAUTH_TEST_KEY_PUBLIC";
    let err = PrivateKey::from_env(var).expect_err("public key file");
    assert!(
        matches!(
            err,
            KeyError::IsPublic {
                origin: KeyOrigin::EnvVar { .. }
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(var) && err.to_string().contains("rsa.pub.pem"),
        "{err}"
    );

    for var in ["IBKR_OAUTH_TEST_KEY_UNSET", "IBKR_OAUTH_TEST_KEY_EMPTY"] {
        let err = PrivateKey::from_env(var).expect_err("unset or empty");
        assert!(
            matches!(&err, KeyError::EnvVar { name } if name == var),
            "{err:?}"
        );
        assert!(err.to_string().contains(var), "{err}");
    }
}

#[test]
fn key_errors_never_print_key_material() {
    let pem = fixture_text("rsa_pkcs8.pem");
    let body_line = pem.lines().nth(5).expect("a base64 line");
    let damaged = pem.replace(body_line, &format!("{body_line}!"));
    let encrypted = fixture_text("rsa_encrypted.pem");
    let errors = [
        PrivateKey::from_pem(&damaged).expect_err("damaged"),
        PrivateKey::from_pem(&encrypted).expect_err("encrypted"),
        PrivateKey::from_encrypted_pem(&encrypted, "Hunter2-Secret").expect_err("wrong passphrase"),
        PrivateKey::from_pem(&pem[..pem.len() / 2]).expect_err("truncated"),
    ];
    for err in errors {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(body_line), "leaks key material: {text}");
            assert!(!text.contains("MII"), "leaks key material: {text}");
            assert!(!text.contains("Hunter2"), "leaks the passphrase: {text}");
        }
    }
}

#[test]
fn private_key_debug_and_display_are_redacted() {
    for name in ["rsa_pkcs8.pem", "ec_sec1.pem", "ed25519_pkcs8.pem"] {
        let pem = fixture_text(name);
        let key = PrivateKey::from_pem(&pem).expect(name);
        let exported = key.to_pkcs8_pem().expect("export");
        let base64_lines: Vec<&str> = pem
            .lines()
            .chain(exported.lines())
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for text in [format!("{key:?}"), key.to_string()] {
            assert!(text.contains("[redacted]"), "{text}");
            for line in &base64_lines {
                assert!(!text.contains(line), "{name} leaks key material: {text}");
            }
        }
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ibkr-oauth-assertion-keys-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Env files and CI secrets often hold a PEM key with its line breaks turned into spaces. It
/// must be read, and must never have its body taken for a label that an error would print.
#[test]
fn a_pem_key_flattened_onto_one_line_is_read() {
    for name in [
        "ec_sec1.pem",
        "ed25519_pkcs8.pem",
        "rsa_pkcs1.pem",
        "rsa_pkcs8.pem",
    ] {
        let flat = fixture_text(name).replace(['\r', '\n'], " ");
        let key = PrivateKey::from_pem(&flat).expect(name);
        let original = PrivateKey::from_pem_file(fixture(name)).expect(name);
        assert_eq!(key.public_key_der(), original.public_key_der(), "{name}");
    }
}

/// A flattened block that cannot be read (a damaged body) is refused without quoting it.
#[test]
fn a_damaged_flattened_key_is_refused_without_its_body() {
    let text = fixture_text("ec_sec1.pem");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let flat = format!("-----BEGIN EC PRIVATE KEY----- {body}!! -----END EC PRIVATE KEY-----");
    let error = PrivateKey::from_pem(&flat).expect_err("damaged");
    assert!(matches!(error, KeyError::Malformed { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(&body[..24]), "key material in: {shown}");
    }
}

/// Bare base64 (a key without its BEGIN/END lines) passed where a path is expected: the "path"
/// is not echoed back in the error, which would print the key.
#[test]
fn bare_base64_key_material_given_as_a_path_is_not_echoed() {
    let text = fixture_text("rsa_pkcs8.pem");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let error = PrivateKey::from_pem_file(&body).expect_err("no such file");
    assert!(matches!(error, KeyError::FileRead { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(&body[..32]), "key material in: {shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
    // PEM text with its BEGIN line missing or mistyped is not echoed either.
    let without_begin: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    let typo = text.replacen("-----BEGIN", "----BEGIN", 1);
    for value in [without_begin, typo] {
        let error = PrivateKey::from_pem_file(&value).expect_err("no such file");
        assert!(matches!(error, KeyError::FileRead { .. }), "{error:?}");
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(&body[..32]), "key material in: {shown}");
        }
    }
    // An ordinary missing path is still named, since that is what the user needs to see.
    let error = PrivateKey::from_pem_file("/no/such/dir/private.pem").expect_err("missing");
    assert!(
        error.to_string().contains("/no/such/dir/private.pem"),
        "{error}"
    );
}

#[test]
#[cfg(not(feature = "encrypted-keys"))]
fn without_the_feature_an_encrypted_key_names_the_feature() {
    let err = PrivateKey::from_encrypted_pem_file(fixture("rsa_encrypted.pem"), PASSPHRASE)
        .expect_err("no decryption in this build");
    assert!(
        matches!(&err, KeyError::EncryptedKeysDisabled { origin } if *origin == file_source("rsa_encrypted.pem")),
        "{err:?}"
    );
    assert!(err.to_string().contains("encrypted-keys"), "{err}");
}
