//! The signer: pinned clock, fresh jti, builder bounds, accessors, thread-safety, redaction.

mod assertion_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assertion_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::Error;
use ibkr_oauth::builders::SignerBuilder;
use ibkr_oauth::{Algorithm, ClientAssertion, ConfigError, PrivateKey, SignError, Signer};

const PINNED: u64 = 1_700_000_000;

fn claims_of(assertion: &ClientAssertion) -> serde_json::Value {
    let payload = assertion
        .expose_secret()
        .split('.')
        .nth(1)
        .expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

fn key(alg: Algorithm) -> PrivateKey {
    let name = match alg {
        Algorithm::RS256 | Algorithm::PS256 => "rsa_pkcs8.pem",
        Algorithm::ES256 => "ec_pkcs8.pem",
        _ => "ed25519_pkcs8.pem",
    };
    PrivateKey::from_pem_file(fixture(name)).expect("fixture key")
}

fn pinned(builder: SignerBuilder) -> Signer {
    builder
        .clock(Arc::new(FixedClock(
            UNIX_EPOCH + Duration::from_secs(PINNED),
        )))
        .build()
        .expect("builds")
}

#[test]
fn pinned_clock_fixes_iat_and_exp_exactly() {
    for alg in Algorithm::ALL {
        let signer = pinned(Signer::builder("client", "main", key(alg)).algorithm(alg));
        let claims = claims_of(&signer.sign().expect("signs"));
        assert_eq!(claims["iat"], PINNED - 10, "{alg}");
        assert_eq!(claims["exp"], PINNED + 60, "{alg}");
        assert_eq!(claims["iss"], "client");
        assert_eq!(claims["sub"], "client");
        assert_eq!(claims["aud"], Signer::DEFAULT_AUDIENCE);
        assert!(claims.get("nbf").is_none());
    }
}

#[test]
fn sub_second_time_truncates_and_sign_at_overrides_the_clock() {
    let signer = pinned(
        Signer::builder("client", "main", key(Algorithm::ES256))
            .clock_skew(Duration::ZERO)
            .lifetime(Duration::from_secs(30)),
    );
    let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_900);
    let claims = claims_of(&signer.sign_at(at).expect("signs"));
    assert_eq!(claims["iat"], 1_800_000_000u64);
    assert_eq!(claims["exp"], 1_800_000_030u64);
}

#[test]
fn jti_is_unique_and_at_least_128_bits() {
    let signer = Signer::builder("client", "main", key(Algorithm::EdDSA))
        .build()
        .expect("builds");
    let mut seen = HashSet::new();
    for _ in 0..2_000 {
        let claims = claims_of(&signer.sign().expect("signs"));
        let jti = claims["jti"].as_str().expect("jti string").to_owned();
        assert!(URL_SAFE_NO_PAD.decode(&jti).expect("base64url").len() >= 16);
        assert!(seen.insert(jti), "jti repeated");
    }
}

#[test]
fn clock_before_1970_or_inside_the_skew_is_refused() {
    let signer = Signer::builder("client", "main", key(Algorithm::ES256))
        .build()
        .expect("builds");
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    assert!(matches!(
        signer.sign_at(before_epoch),
        Err(SignError::ClockOutOfRange)
    ));
    let inside_skew = UNIX_EPOCH + Duration::from_secs(5);
    assert!(matches!(
        signer.sign_at(inside_skew),
        Err(SignError::ClockOutOfRange)
    ));
}

#[test]
fn defaults_and_accessors() {
    let rsa = Signer::builder("client", "main", key(Algorithm::RS256))
        .build()
        .expect("rsa");
    assert_eq!(rsa.algorithm(), Algorithm::RS256, "IBKR's default");
    assert_eq!(rsa.client_id(), "client");
    assert_eq!(rsa.key_id(), "main");
    assert_eq!(rsa.audience(), "/token");
    assert_eq!(rsa.clock_skew(), Duration::from_secs(10));
    assert_eq!(rsa.lifetime(), Duration::from_secs(60));
    assert_eq!(rsa.key().bits(), 2048);
    // Without a chosen algorithm, an EC or Ed25519 key signs with its own.
    let ec = Signer::builder("c", "k", key(Algorithm::ES256))
        .build()
        .expect("ec");
    assert_eq!(ec.algorithm(), Algorithm::ES256);
    let ed = Signer::builder("c", "k", key(Algorithm::EdDSA))
        .build()
        .expect("ed");
    assert_eq!(ed.algorithm(), Algorithm::EdDSA);
}

#[test]
fn builder_bounds_are_checked() {
    let bad: Vec<(&str, SignerBuilder)> = vec![
        (
            "empty client id",
            Signer::builder("", "main", key(Algorithm::RS256)),
        ),
        (
            "blank key id",
            Signer::builder("client", "  ", key(Algorithm::RS256)),
        ),
        (
            "control char",
            Signer::builder("cli\nent", "main", key(Algorithm::RS256)),
        ),
        (
            "huge id",
            Signer::builder("c".repeat(1025), "main", key(Algorithm::RS256)),
        ),
        (
            "empty audience",
            Signer::builder("c", "k", key(Algorithm::RS256)).audience(""),
        ),
        (
            "skew too large",
            Signer::builder("c", "k", key(Algorithm::RS256)).clock_skew(Duration::from_secs(301)),
        ),
        (
            "zero lifetime",
            Signer::builder("c", "k", key(Algorithm::RS256)).lifetime(Duration::ZERO),
        ),
        (
            "lifetime too long",
            Signer::builder("c", "k", key(Algorithm::RS256)).lifetime(Duration::from_secs(301)),
        ),
    ];
    for (case, builder) in bad {
        let err = builder.build().expect_err(case);
        assert!(
            matches!(err, Error::Config(ConfigError::Signer(_))),
            "{case}: {err:?}"
        );
    }
    // The bounds themselves are accepted.
    Signer::builder("c", "k", key(Algorithm::RS256))
        .clock_skew(Duration::from_secs(300))
        .lifetime(Duration::from_secs(300))
        .build()
        .expect("max bounds");
    Signer::builder("c", "k", key(Algorithm::RS256))
        .clock_skew(Duration::ZERO)
        .lifetime(Duration::from_secs(1))
        .build()
        .expect("min bounds");
}

#[test]
fn algorithm_names_parse() {
    for alg in Algorithm::ALL {
        assert_eq!(alg.as_str().parse::<Algorithm>().expect("parses"), alg);
        assert_eq!(
            alg.as_str()
                .to_lowercase()
                .parse::<Algorithm>()
                .expect("any case"),
            alg
        );
    }
    let err = "HS256"
        .parse::<Algorithm>()
        .expect_err("HS256 is not offered");
    assert!(
        matches!(&err, ConfigError::UnknownAlgorithm { name } if name == "HS256"),
        "{err:?}"
    );
}

#[test]
fn signer_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Signer>();
    assert_send_sync::<PrivateKey>();
    assert_send_sync::<ClientAssertion>();
    let signer = Signer::builder("client", "main", key(Algorithm::ES256))
        .build()
        .expect("builds");
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let signer = signer.clone();
            std::thread::spawn(move || signer.sign().map(|a| a.expose_secret().len()))
        })
        .collect();
    for handle in handles {
        assert!(handle.join().expect("thread").expect("signs") > 100);
    }
}

#[test]
fn signer_and_assertion_never_print_secrets() {
    let pem = fixture_text("rsa_pkcs8.pem");
    let key = PrivateKey::from_pem(&pem).expect("key");
    let exported = key.to_pkcs8_pem().expect("export");
    let builder = Signer::builder("client", "main", key);
    let builder_debug = format!("{builder:?}");
    let signer = builder.build().expect("builds");
    let assertion = signer.sign().expect("signs");
    let jws = assertion.expose_secret();
    let segments: Vec<&str> = jws.split('.').collect();
    let material: Vec<&str> = pem
        .lines()
        .chain(exported.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let printed = [
        builder_debug,
        format!("{signer:?}"),
        signer.to_string(),
        format!("{assertion:?}"),
        assertion.to_string(),
        format!("{:?}", signer.key()),
        signer.key().to_string(),
    ];
    for text in &printed {
        for line in &material {
            assert!(!text.contains(line), "key material printed: {text}");
        }
        for segment in &segments[1..] {
            assert!(!text.contains(segment), "assertion printed: {text}");
        }
    }
    assert_eq!(assertion.to_string(), "[redacted]");
    assert!(format!("{assertion:?}").contains("[redacted]"));
}

#[test]
fn system_clock_is_used_by_default() {
    let signer = Signer::builder("client", "main", key(Algorithm::ES256))
        .build()
        .expect("builds");
    let before = unix(SystemTime::now());
    let claims = claims_of(&signer.sign().expect("signs"));
    let after = unix(SystemTime::now());
    let iat = claims["iat"].as_u64().expect("iat");
    assert!(
        (before - 10..=after - 10).contains(&iat),
        "iat {iat} not now - 10 s"
    );
}
