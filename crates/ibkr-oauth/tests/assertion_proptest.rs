//! Arbitrary input into the key parsers never panics; it parses or returns an error.

use ibkr_oauth::PrivateKey;
use proptest::prelude::*;

/// Text shaped like PEM (a real label, arbitrary body), which reaches the base64, DER and
/// crypto-backend layers rather than stopping at "no PEM here".
fn pem_like() -> impl Strategy<Value = String> {
    let labels = prop::sample::select(vec![
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PUBLIC KEY",
        "CERTIFICATE",
    ]);
    (
        labels,
        prop::collection::vec(any::<u8>(), 0..600),
        any::<bool>(),
    )
        .prop_map(|(label, body, end)| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(body);
            let end = if end {
                format!("-----END {label}-----\n")
            } else {
                String::new()
            };
            format!("-----BEGIN {label}-----\n{b64}\n{end}")
        })
}

/// A DER prefix of a real PKCS#8 RSA key with arbitrary bytes after it.
fn mutated_real_key() -> impl Strategy<Value = String> {
    (0usize..1200, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(cut, tail)| {
        use base64::Engine as _;
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa_pkcs8.pem"
        ))
        .expect("fixture");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let engine = base64::engine::general_purpose::STANDARD;
        let mut der = engine.decode(b64).expect("fixture base64");
        der.truncate(cut.min(der.len()));
        der.extend(tail);
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            engine.encode(der)
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = PrivateKey::from_pem(&text);
        let _ = PrivateKey::from_encrypted_pem(&text, "pass");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = PrivateKey::from_pem(&text);
    }

    #[test]
    fn pem_shaped_garbage_never_panics(text in pem_like()) {
        prop_assert!(PrivateKey::from_pem(&text).is_err());
        prop_assert!(PrivateKey::from_encrypted_pem(&text, "pass").is_err());
    }

    #[test]
    fn damaged_real_keys_never_panic(text in mutated_real_key()) {
        let _ = PrivateKey::from_pem(&text);
    }
}
