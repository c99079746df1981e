//! Tests of `config`.

use std::collections::HashMap;
use std::env::VarError;

use super::*;
use crate::assertion::KeyError;
use crate::error::ClientSetting;

fn config(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned().ok_or(VarError::NotPresent)).expect("config")
}

fn pem() -> String {
    let key = PrivateKey::generate(Algorithm::EdDSA).expect("key");
    key.to_pkcs8_pem().expect("pem").as_str().to_owned()
}

#[test]
fn variables_and_their_origins() {
    let pem = pem();
    let c = config(&[
        (env_vars::CLIENT_ID, "client"),
        (env_vars::KEY_ID, "main"),
        (env_vars::PRIVATE_KEY, &pem),
        (env_vars::SCOPE, "echo.read"),
        (env_vars::BASE_URL, ""),
    ]);
    let signer = c.signer().expect("signer");
    assert_eq!((signer.client_id(), signer.key_id()), ("client", "main"));
    let origins: HashMap<_, _> = c.origins().into_iter().collect();
    assert_eq!(
        origins["client id"],
        SettingOrigin::Variable(env_vars::CLIENT_ID)
    );
    assert_eq!(
        origins["base URL"],
        SettingOrigin::Default,
        "an empty variable is unset"
    );
    assert_eq!(c.get_base_url(), IBKR_PRODUCTION);
    let c = c.client_id("flag-client");
    assert_eq!(
        c.origins()[0],
        ("client id", SettingOrigin::Set),
        "a flag wins"
    );
    assert!(
        !format!("{c:?}").contains("PRIVATE KEY"),
        "the key never prints"
    );
}

#[test]
fn errors_name_the_variable() {
    let pem = pem();
    let base = [
        (env_vars::CLIENT_ID, "client"),
        (env_vars::KEY_ID, "main"),
        (env_vars::PRIVATE_KEY, pem.as_str()),
    ];
    let mut vars = base.to_vec();
    vars.push((env_vars::ALG, "foo"));
    let error = config(&vars).signer().expect_err("bad algorithm");
    assert!(
        matches!(
            &error,
            Error::Config(ConfigError::Variable {
                name: "IBKR_ALG",
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("IBKR_ALG"), "{error}");

    let mut vars = base.to_vec();
    vars.push((env_vars::BASE_URL, "http://api.ibkr.com"));
    let error = config(&vars).client().expect_err("plain http");
    assert!(
        matches!(
            &error,
            ConfigError::Variable {
                name: "IBKR_BASE_URL",
                problem: VariableProblem::Refused(refused),
            } if **refused == ConfigError::Client(ClientSetting::PlainHttp {
                host: "api.ibkr.com".into()
            })
        ),
        "{error:?}"
    );

    let error = config(&base[..2]).signer().expect_err("no key");
    assert!(
        matches!(
            error,
            Error::Config(ConfigError::Missing {
                variable: "IBKR_PRIVATE_KEY",
                ..
            })
        ),
        "{error:?}"
    );
    let vars = [(env_vars::PRIVATE_KEY, "/no/such/key.pem")];
    match config(&vars).key() {
        Err(Error::Key(e)) => assert!(
            matches!(&*e, KeyError::FileRead { origin: crate::key::KeyOrigin::EnvVar { name, .. }, .. } if name == "IBKR_PRIVATE_KEY"),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg(feature = "encrypted-keys")]
fn an_encrypted_key_needs_the_passphrase_variable() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let encrypted = format!("{fixtures}/ed25519_encrypted.pem");
    let plain = PrivateKey::from_pem_file(format!("{fixtures}/ed25519_pkcs8.pem")).expect("plain");
    let without = config(&[(env_vars::PRIVATE_KEY, &encrypted)]);
    assert!(
        matches!(without.key(), Err(Error::Key(e)) if matches!(&*e, KeyError::Encrypted { .. }))
    );
    let with = config(&[
        (env_vars::PRIVATE_KEY, &encrypted),
        (env_vars::PRIVATE_KEY_PASSPHRASE, "test-passphrase"),
    ]);
    assert_eq!(
        with.key().expect("decrypted").public_key_pem(),
        plain.public_key_pem()
    );
}

#[cfg(feature = "provider")]
#[test]
fn the_session_settings_come_from_their_variables() {
    let c = config(&[
        (env_vars::USERNAME, "alice123"),
        (env_vars::SESSION_IP, "203.0.113.7"),
    ]);
    assert_eq!(c.get_username(), Some("alice123"));
    let session = c.session_config().expect("builder").build().expect("valid");
    assert_eq!(session.credential(), "alice123");
    assert_eq!(session.ip(), Some("203.0.113.7".parse().unwrap()));
    let missing = config(&[(env_vars::USERNAME, "alice123")]).session_config();
    assert!(
        matches!(missing, Err(ConfigError::Missing { variable, .. }) if variable == env_vars::SESSION_IP)
    );
    let missing = Config::new().session_ip("203.0.113.7").session_config();
    assert!(
        matches!(missing, Err(ConfigError::Missing { variable, .. }) if variable == env_vars::USERNAME)
    );
}
