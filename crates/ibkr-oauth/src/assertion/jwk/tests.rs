//! Unit tests of `jwk` (may use its private items).

use super::*;

/// RFC 7638 section 3.1's example RSA key.
const RFC_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
const RFC_E: &str = "AQAB";
const RFC_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/// A DER length.
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn integer(unsigned: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    if unsigned.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(unsigned);
    tlv(0x02, &content)
}

/// The SubjectPublicKeyInfo DER of an RSA key, built by hand from `n` and `e`.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_public_key = tlv(0x30, &[integer(n), integer(e)].concat());
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let algorithm = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            ),
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let bit_string = tlv(0x03, &[&[0u8][..], &rsa_public_key].concat());
    tlv(0x30, &[algorithm, bit_string].concat())
}

#[test]
fn the_rfc_7638_example_key_has_the_rfc_thumbprint() {
    let n = URL_SAFE_NO_PAD.decode(RFC_N).unwrap();
    let e = URL_SAFE_NO_PAD.decode(RFC_E).unwrap();
    let members = required_members(KeyType::Rsa, &rsa_spki(&n, &e)).unwrap();
    assert_eq!(
        members,
        vec![
            ("e", RFC_E.to_owned()),
            ("kty", "RSA".to_owned()),
            ("n", RFC_N.to_owned())
        ]
    );
    assert_eq!(thumbprint_of(&members), RFC_THUMBPRINT);
}

#[test]
fn a_generated_rsa_key_round_trips_through_its_jwk() {
    let key = PrivateKey::generate(Algorithm::PS256).unwrap();
    let jwk = key.public_jwk("k1", Algorithm::PS256).unwrap();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["alg"], "PS256");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256);
    // The JWK rebuilds the same SubjectPublicKeyInfo, so the members are the key's.
    let rebuilt = rsa_spki(&n, &[1, 0, 1]);
    assert_eq!(rebuilt, key.public_key_der());
    assert_eq!(
        key.thumbprint().unwrap(),
        thumbprint_of(&required_members(KeyType::Rsa, &rebuilt).unwrap())
    );
}

#[test]
fn ec_and_ed25519_keys_have_their_members() {
    let ec = PrivateKey::generate(Algorithm::ES256).unwrap();
    let jwk = ec.public_jwk("main", Algorithm::ES256).unwrap();
    assert_eq!(jwk["crv"], "P-256");
    for member in ["x", "y"] {
        let bytes = URL_SAFE_NO_PAD
            .decode(jwk[member].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 32, "{member}");
    }
    let ed = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    let jwk = ed.public_jwk("main", Algorithm::EdDSA).unwrap();
    assert_eq!(
        (
            jwk["kty"].as_str(),
            jwk["crv"].as_str(),
            jwk["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    assert!(ed.public_key_der().ends_with(&x));
    assert_ne!(ec.thumbprint().unwrap(), ed.thumbprint().unwrap());
    // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let members = vec![
        ("crv", "Ed25519".to_owned()),
        ("kty", "OKP".to_owned()),
        ("x", URL_SAFE_NO_PAD.encode(x)),
    ];
    assert_eq!(
        thumbprint_of(&members),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn a_jwk_for_another_key_type_is_refused() {
    let key = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    assert!(matches!(
        key.public_jwk("main", Algorithm::RS256),
        Err(KeyError::AlgorithmMismatch {
            algorithm: Algorithm::RS256,
            ..
        })
    ));
}

#[test]
fn malformed_public_keys_give_no_members() {
    assert_eq!(required_members(KeyType::Rsa, b"not der"), None);
    assert_eq!(required_members(KeyType::Rsa, &[0x30, 0x00]), None);
}
