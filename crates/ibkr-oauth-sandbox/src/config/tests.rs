//! Unit tests of the sandbox configuration.

use super::*;
use crate::RunningSandbox;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap()
}

#[test]
fn infers_the_algorithm_from_the_key_type() {
    let sandbox = Sandbox::builder()
        .client(
            RegisteredClient::new("c")
                .key("rsa", fixture("rsa_public.pem"))
                .key("ec", fixture("ec_public.pem"))
                .key("ed", fixture("ed25519_public.pem"))
                .key_with_algorithm("pss", Algorithm::PS256, fixture("rsa_other_public.pem")),
        )
        .build()
        .unwrap();
    let alg = |kid: &str| sandbox.config.keys[kid].algorithm;
    assert_eq!(alg("rsa"), Algorithm::RS256);
    assert_eq!(alg("ec"), Algorithm::ES256);
    assert_eq!(alg("ed"), Algorithm::EdDSA);
    assert_eq!(alg("pss"), Algorithm::PS256);
}

#[test]
fn refuses_a_key_that_does_not_fit_its_algorithm() {
    let err = Sandbox::builder()
        .client(RegisteredClient::new("c").key_with_algorithm(
            "k",
            Algorithm::ES256,
            fixture("rsa_public.pem"),
        ))
        .build()
        .unwrap_err();
    assert!(matches!(
        &err,
        Error::KeyAlgorithmMismatch { kid, algorithm: Algorithm::ES256, key_type: "RSA", fits }
            if kid == "k" && fits == "RS256 or PS256"
    ));
    assert_eq!(
        err.to_string(),
        "public key \"k\": a RSA key cannot verify ES256; register it for RS256 or PS256 or \
         register a key of the right type"
    );
}

#[test]
fn refuses_duplicates_and_empty_configurations() {
    let ed = fixture("ed25519_public.pem");
    assert!(matches!(Sandbox::builder().build(), Err(Error::NoClient)));
    assert!(matches!(
        Sandbox::builder().client(RegisteredClient::new("c")).build(),
        Err(Error::ClientWithoutKey { client_id }) if client_id == "c"
    ));
    assert!(matches!(
        Sandbox::builder().client_key("a", "main", ed.clone()).client_key("b", "main", ed.clone()).build(),
        Err(Error::DuplicateKid { kid }) if kid == "main"
    ));
    assert!(matches!(
        Sandbox::builder().client_key("a", "k1", ed.clone()).client_key("a", "k2", ed.clone()).build(),
        Err(Error::DuplicateClient { client_id }) if client_id == "a"
    ));
    assert!(matches!(
        Sandbox::builder().client_key("", "k", ed.clone()).build(),
        Err(Error::InvalidSetting {
            setting: "client id",
            ..
        })
    ));
    assert!(matches!(
        Sandbox::builder().client_key("c", "", ed.clone()).build(),
        Err(Error::InvalidSetting { setting: "kid", .. })
    ));
}

#[test]
fn refuses_out_of_range_settings() {
    let ed = fixture("ed25519_public.pem");
    let base = || Sandbox::builder().client_key("c", "k", ed.clone());
    let setting = |b: SandboxBuilder| match b.build() {
        Err(Error::InvalidSetting { setting, .. }) => setting,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(setting(base().audience("")), "audience");
    assert_eq!(
        setting(base().expires_in(Duration::from_millis(500))),
        "expires_in"
    );
    assert_eq!(
        setting(base().max_assertion_lifetime(Duration::ZERO)),
        "max_assertion_lifetime"
    );
    assert_eq!(setting(base().max_body_bytes(10)), "max_body_bytes");
    let scoped = |c: RegisteredClient| setting(Sandbox::builder().client(c.key("k", ed.clone())));
    assert_eq!(
        scoped(RegisteredClient::new("c").allowed_scopes(["a b"])),
        "scopes"
    );
    assert_eq!(
        scoped(
            RegisteredClient::new("c")
                .allowed_scopes(["a.read"])
                .default_scopes(["b.read"])
        ),
        "default_scopes"
    );
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sandbox>();
    send_sync::<SandboxBuilder>();
    send_sync::<RunningSandbox>();
    send_sync::<crate::RecordedRequest>();
    send_sync::<Error>();
}

#[test]
fn debug_shows_no_key_material() {
    let client = RegisteredClient::new("c").key("main", fixture("ed25519_public.pem"));
    let shown = format!("{client:?}");
    assert!(shown.contains("main") && !shown.contains("BEGIN"));
}
