//! Unit tests of `decrypt` (may use its private items).

use pkcs8::der::Encode as _;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::pkcs5::EncryptionScheme;
use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Params, Pbkdf2Prf, Salt, ScryptParams};

use super::super::PrivateKey;
use super::*;
use crate::assertion::pem;

/// An encrypted key file with these KDF parameters (the ciphertext is junk: it must never
/// be reached).
fn crafted(kdf: Kdf) -> String {
    let scheme = EncryptionScheme::Pbes2(pbes2::Parameters {
        kdf,
        encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: [7; 16] },
    });
    let data = [0u8; 48];
    let info = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: scheme,
        encrypted_data: OctetStringRef::new(&data).expect("octets"),
    };
    let der = info.to_der().expect("der");
    pem::encode("ENCRYPTED PRIVATE KEY", &der)
        .as_str()
        .to_owned()
}

fn pbkdf2(iterations: u32) -> Kdf {
    Kdf::Pbkdf2(Pbkdf2Params {
        salt: Salt::new([1u8; 16]).expect("salt"),
        iteration_count: iterations,
        key_length: None,
        prf: Pbkdf2Prf::HmacWithSha256,
    })
}

fn scrypt(cost: u64, block_size: u16, parallelization: u16) -> Kdf {
    Kdf::Scrypt(ScryptParams {
        salt: Salt::new([1u8; 16]).expect("salt"),
        cost_parameter: cost,
        block_size,
        parallelization,
        key_length: Some(32),
    })
}

fn refused(kdf: Kdf) -> (&'static str, u64, u64) {
    match PrivateKey::from_encrypted_pem(&crafted(kdf), "passphrase") {
        Err(KeyError::KdfCostTooHigh {
            parameter,
            value,
            cap,
            ..
        }) => (parameter, value, cap),
        other => panic!("expected KdfCostTooHigh, got {other:?}"),
    }
}

#[test]
fn pbkdf2_iterations_past_the_cap_are_refused_at_once() {
    let (parameter, value, cap) = refused(pbkdf2(u32::MAX));
    assert_eq!(parameter, "PBKDF2 iterations");
    assert_eq!(
        (value, cap),
        (u64::from(u32::MAX), PrivateKey::MAX_PBKDF2_ITERATIONS)
    );
    refused(pbkdf2(50_000_000));
    // Issue 20: the cap was 10 million, about two minutes of a debug build; now a million.
    let (_, value, cap) = refused(pbkdf2(1_000_001));
    assert_eq!((value, cap), (1_000_001, 1_000_000));
    refused(pbkdf2(10_000_000));
}

#[test]
fn scrypt_memory_and_work_past_the_caps_are_refused_at_once() {
    // N = 2^40, r = 8: about 1 PiB, which would abort the process.
    let (parameter, value, cap) = refused(scrypt(1 << 40, 8, 1));
    assert!(parameter.starts_with("scrypt memory"), "{parameter}");
    assert_eq!(
        (value, cap),
        ((128 * 8) << 40, PrivateKey::MAX_SCRYPT_MEMORY_BYTES)
    );
    // Little memory, much work: N = 2^14, r = 1, p = 65535.
    let (parameter, ..) = refused(scrypt(1 << 14, 1, u16::MAX));
    assert!(parameter.starts_with("scrypt work"), "{parameter}");
}

#[test]
fn usual_costs_are_not_refused_by_the_caps() {
    // OpenSSL's defaults pass the caps; the junk ciphertext then fails to decrypt.
    for kdf in [pbkdf2(2048), pbkdf2(10_000), scrypt(1 << 14, 8, 1)] {
        assert!(matches!(
            PrivateKey::from_encrypted_pem(&crafted(kdf), "passphrase"),
            Err(KeyError::PassphraseWrong { .. })
        ));
    }
}

#[test]
fn the_message_names_the_parameter_and_the_cap() {
    let error = PrivateKey::from_encrypted_pem(&crafted(pbkdf2(u32::MAX)), "x").unwrap_err();
    let text = error.to_string();
    assert!(text.contains("PBKDF2 iterations = 4294967295"), "{text}");
    assert!(text.contains("cap of 1000000 "), "{text}");
}
