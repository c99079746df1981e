//! Every algorithm and key format signs, and an independent verifier (jsonwebtoken on
//! RustCrypto, with OpenSSL-made public keys) accepts the signature and reads back exactly the
//! claims; tampering, a wrong key, a wrong `kid` and an expired `exp` are rejected.

mod assertion_support;

use std::sync::Arc;
use std::time::Duration;

use assertion_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::{Algorithm, PrivateKey, Signer};

const CLIENT: &str = "test-client-id";
const KID: &str = "main";

/// (algorithm, how the key is loaded, the OpenSSL public key that must verify it)
fn cases() -> Vec<(Algorithm, &'static str, PrivateKey, &'static str)> {
    let file = |name| PrivateKey::from_pem_file(fixture(name)).expect(name);
    let encrypted =
        |name| PrivateKey::from_encrypted_pem_file(fixture(name), PASSPHRASE).expect(name);
    vec![
        (
            Algorithm::RS256,
            "PKCS#8",
            file("rsa_pkcs8.pem"),
            "rsa.pub.pem",
        ),
        (
            Algorithm::RS256,
            "PKCS#1",
            file("rsa_pkcs1.pem"),
            "rsa.pub.pem",
        ),
        (
            Algorithm::RS256,
            "encrypted PKCS#8",
            encrypted("rsa_encrypted.pem"),
            "rsa.pub.pem",
        ),
        (
            Algorithm::PS256,
            "PKCS#8",
            file("rsa_pkcs8.pem"),
            "rsa.pub.pem",
        ),
        (
            Algorithm::PS256,
            "PKCS#1",
            file("rsa_pkcs1.pem"),
            "rsa.pub.pem",
        ),
        (
            Algorithm::ES256,
            "PKCS#8",
            file("ec_pkcs8.pem"),
            "ec.pub.pem",
        ),
        (Algorithm::ES256, "SEC1", file("ec_sec1.pem"), "ec.pub.pem"),
        (
            Algorithm::ES256,
            "encrypted PKCS#8 (scrypt)",
            encrypted("ec_encrypted_scrypt.pem"),
            "ec.pub.pem",
        ),
        (
            Algorithm::EdDSA,
            "PKCS#8",
            file("ed25519_pkcs8.pem"),
            "ed25519.pub.pem",
        ),
        (
            Algorithm::EdDSA,
            "encrypted PKCS#8",
            encrypted("ed25519_encrypted.pem"),
            "ed25519.pub.pem",
        ),
    ]
}

fn pinned_signer(key: PrivateKey, alg: Algorithm) -> (Signer, u64) {
    let now = now_whole_seconds();
    let signer = Signer::builder(CLIENT, KID, key)
        .algorithm(alg)
        .clock(Arc::new(FixedClock(now)))
        .build()
        .expect("signer builds");
    (signer, unix(now))
}

#[test]
fn every_algorithm_and_format_verifies_with_the_openssl_public_key() {
    for (alg, format, key, public) in cases() {
        let (signer, now) = pinned_signer(key, alg);
        let assertion = signer.sign().expect("signs");
        let keys = [(KID, decoding_key(alg, &fixture_text(public)))];
        let (header, claims) = verify(assertion.expose_secret(), alg, &keys, CLIENT, "/token")
            .unwrap_or_else(|e| panic!("{alg} from {format}: verifier refused: {e}"));
        assert_eq!(header.alg, jwt_algorithm(alg), "{alg} {format}");
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(KID));
        assert_eq!(claims.iss, CLIENT);
        assert_eq!(claims.sub, CLIENT);
        assert_eq!(claims.aud, "/token");
        assert_eq!(claims.iat, now - 10, "{alg} {format}: iat = now - 10 s");
        assert_eq!(claims.exp, now + 60, "{alg} {format}: exp = now + 60 s");
        assert_eq!(claims.nbf, None);
        let jti = URL_SAFE_NO_PAD
            .decode(&claims.jti)
            .expect("jti is base64url");
        assert!(jti.len() * 8 >= 128, "jti has at least 128 bits");
    }
}

#[test]
fn header_is_exactly_alg_typ_kid() {
    for (alg, _, key, _) in cases().into_iter().step_by(3) {
        let (signer, _) = pinned_signer(key, alg);
        let assertion = signer.sign().expect("signs");
        let header_b64 = assertion.expose_secret().split('.').next().expect("header");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).expect("base64url"))
                .expect("json");
        assert_eq!(
            header,
            serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": KID})
        );
    }
}

#[test]
fn generated_keys_verify_with_their_exported_public_key() {
    for alg in Algorithm::ALL {
        let key = PrivateKey::generate(alg).expect("generates");
        // The exported private key reads back as the same key.
        let reread = PrivateKey::from_pem(&key.to_pkcs8_pem().expect("exports")).expect("reads");
        assert_eq!(reread.public_key_pem(), key.public_key_pem());
        let public = key.public_key_pem();
        let (signer, _) = pinned_signer(reread, alg);
        let assertion = signer.sign().expect("signs");
        let keys = [(KID, decoding_key(alg, &public))];
        verify(assertion.expose_secret(), alg, &keys, CLIENT, "/token")
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn configured_audience_and_nbf_are_signed() {
    let key = PrivateKey::from_pem_file(fixture("rsa_pkcs8.pem")).expect("key");
    let now = now_whole_seconds();
    let aud = "https://api.ibkr.com/oauth2/api/v1/token";
    let signer = Signer::builder(CLIENT, KID, key)
        .audience(aud)
        .not_before(true)
        .clock_skew(Duration::from_secs(5))
        .lifetime(Duration::from_secs(20))
        .clock(Arc::new(FixedClock(now)))
        .build()
        .expect("builds");
    let keys = [(
        KID,
        decoding_key(Algorithm::RS256, &fixture_text("rsa.pub.pem")),
    )];
    let (_, claims) = verify(
        signer.sign().expect("signs").expose_secret(),
        Algorithm::RS256,
        &keys,
        CLIENT,
        aud,
    )
    .expect("verifies");
    assert_eq!(claims.aud, aud);
    assert_eq!(claims.iat, unix(now) - 5);
    assert_eq!(claims.exp, unix(now) + 20);
    assert_eq!(claims.nbf, Some(unix(now) - 5));
}

#[test]
fn tampered_payload_is_rejected() {
    for (alg, _, key, public) in cases().into_iter().step_by(2) {
        let (signer, _) = pinned_signer(key, alg);
        let assertion = signer.sign().expect("signs");
        let mut parts: Vec<String> = assertion
            .expose_secret()
            .split('.')
            .map(str::to_owned)
            .collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
        claims["sub"] = serde_json::json!("someone-else");
        claims["iss"] = serde_json::json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
        let tampered = parts.join(".");
        let keys = [(KID, decoding_key(alg, &fixture_text(public)))];
        let refused = verify(&tampered, alg, &keys, "someone-else", "/token");
        assert!(refused.is_err(), "{alg}: tampered payload accepted");
        // The untampered one passes the same verifier, so the refusal is the tampering's.
        verify(assertion.expose_secret(), alg, &keys, CLIENT, "/token").expect("original verifies");
    }
}

#[test]
fn wrong_key_is_rejected() {
    for alg in Algorithm::ALL {
        let signing = PrivateKey::generate(alg).expect("key");
        let other = PrivateKey::generate(alg).expect("other key");
        let (signer, _) = pinned_signer(signing, alg);
        let assertion = signer.sign().expect("signs");
        let keys = [(KID, decoding_key(alg, &other.public_key_pem()))];
        let err = verify(assertion.expose_secret(), alg, &keys, CLIENT, "/token")
            .expect_err("wrong key must fail");
        assert!(
            err.contains("InvalidSignature") || err.to_lowercase().contains("signature"),
            "{alg}: {err}"
        );
    }
}

#[test]
fn wrong_kid_is_rejected() {
    let key = PrivateKey::from_pem_file(fixture("rsa_pkcs8.pem")).expect("key");
    let other = PrivateKey::generate(Algorithm::RS256).expect("other");
    let signer = Signer::builder(CLIENT, "backup", key)
        .build()
        .expect("builds");
    let assertion = signer.sign().expect("signs");
    // The server knows only `main`: an unknown kid finds no key.
    let only_main = [(
        KID,
        decoding_key(Algorithm::RS256, &fixture_text("rsa.pub.pem")),
    )];
    let err = verify(
        assertion.expose_secret(),
        Algorithm::RS256,
        &only_main,
        CLIENT,
        "/token",
    )
    .expect_err("unknown kid must fail");
    assert!(err.contains("unknown kid backup"), "{err}");
    // `backup` registered with another key: the signature does not match that key.
    let backup_is_other = [
        (
            KID,
            decoding_key(Algorithm::RS256, &fixture_text("rsa.pub.pem")),
        ),
        (
            "backup",
            decoding_key(Algorithm::RS256, &other.public_key_pem()),
        ),
    ];
    verify(
        assertion.expose_secret(),
        Algorithm::RS256,
        &backup_is_other,
        CLIENT,
        "/token",
    )
    .expect_err("kid of another key must fail");
}

#[test]
fn expired_assertion_is_rejected() {
    let key = PrivateKey::from_pem_file(fixture("ec_pkcs8.pem")).expect("key");
    let signer = Signer::builder(CLIENT, KID, key).build().expect("builds");
    let keys = [(
        KID,
        decoding_key(Algorithm::ES256, &fixture_text("ec.pub.pem")),
    )];
    let two_minutes_ago = now_whole_seconds() - Duration::from_secs(120);
    let stale = signer.sign_at(two_minutes_ago).expect("signs");
    let err = verify(
        stale.expose_secret(),
        Algorithm::ES256,
        &keys,
        CLIENT,
        "/token",
    )
    .expect_err("expired must fail");
    assert!(err.contains("ExpiredSignature"), "{err}");
    let fresh = signer.sign().expect("signs");
    verify(
        fresh.expose_secret(),
        Algorithm::ES256,
        &keys,
        CLIENT,
        "/token",
    )
    .expect("fresh verifies");
}

#[test]
fn every_signature_is_fresh() {
    // Same instant, same key: the jti (and for PS256/ES256 the randomised signature) differs.
    for alg in Algorithm::ALL {
        let key = PrivateKey::generate(alg).expect("key");
        let (signer, _) = pinned_signer(key, alg);
        let a = signer.sign().expect("signs");
        let b = signer.sign().expect("signs");
        assert_ne!(a.expose_secret(), b.expose_secret(), "{alg}");
    }
}
