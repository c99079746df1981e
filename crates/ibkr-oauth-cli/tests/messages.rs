//! The command explains itself: an error from a variable names the variable, help lists only
//! the flags a command uses with one default each, a transport error names the URL tried.

mod common;

use common::{TestSandbox, cli, closed_port, run};

#[test]
fn a_bad_variable_is_reported_as_the_variable_not_as_a_flag() {
    let sandbox = TestSandbox::start();
    for sub in ["token", "assertion", "doctor", "jwk", "keygen"] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(sandbox
            .cli()
            .current_dir(dir.path())
            .env("IBKR_ALG", "foo")
            .arg(sub));
        assert_eq!(out.code, 2, "{sub}: {out:#?}");
        let all = out.all();
        assert!(all.contains("IBKR_ALG"), "{sub}: {out:#?}");
        assert!(!all.contains("--alg"), "{sub}: {out:#?}");
        assert!(all.contains("foo"), "{sub}: {out:#?}");
    }
    // The flag itself is still reported as the flag.
    let out = run(sandbox.cli().args(["token", "--alg", "foo"]));
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("--alg"), "{out:#?}");
}

#[test]
fn a_bad_base_url_variable_is_named() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", "http://api.ibkr.com")
        .arg("token"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("IBKR_BASE_URL"), "{stderr}");
}

/// The long flags a command's help lists.
fn flags(sub: &str) -> Vec<String> {
    let out = run(cli().args([sub, "--help"]));
    out.assert_success()
        .lines()
        .filter_map(|l| l.trim_start().split_once("--"))
        .filter(|(before, _)| {
            before.is_empty() || before.ends_with(", ") || before.starts_with('-')
        })
        .map(|(_, after)| {
            after
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn assertion_help_lists_only_the_flags_it_uses() {
    let flags = flags("assertion");
    for used in [
        "client-id",
        "key-id",
        "private-key",
        "audience",
        "alg",
        "decode",
        "raw",
    ] {
        assert!(flags.iter().any(|f| f == used), "{used} missing: {flags:?}");
    }
    for unused in ["base-url", "scope", "timeout"] {
        assert!(
            !flags.iter().any(|f| f == unused),
            "{unused} listed: {flags:?}"
        );
    }
}

#[test]
fn each_flag_shows_one_default() {
    for sub in [
        "sandbox",
        "token",
        "doctor",
        "keygen",
        "assertion",
        "jwk",
        "demo",
    ] {
        let out = run(cli().args([sub, "--help"]));
        let help = out.assert_success().to_owned();
        // A flag's entry: from its `-x`/`--flag` line to the next one.
        let mut entries: Vec<String> = Vec::new();
        for line in help.lines() {
            if line.trim_start().starts_with('-') {
                entries.push(String::new());
            }
            if let Some(entry) = entries.last_mut() {
                entry.push_str(line);
            }
        }
        for entry in entries {
            assert!(entry.matches("[default").count() <= 1, "{sub}: {entry}");
        }
    }
    let out = run(cli().args(["sandbox", "--help"]));
    assert!(out.stdout.contains("[default: a free one]"), "{out:#?}");
    assert!(!out.stdout.contains("[default: 0]"), "{out:#?}");
}

#[test]
fn help_names_the_variables_and_never_a_passphrase_flag() {
    let help = run(cli().args(["token", "--help"])).stdout;
    for var in [
        "IBKR_CLIENT_ID",
        "IBKR_KEY_ID",
        "IBKR_PRIVATE_KEY",
        "IBKR_SCOPE",
        "IBKR_BASE_URL",
    ] {
        assert!(help.contains(var), "{var}: {help}");
    }
    assert!(help.contains("IBKR_PRIVATE_KEY_PASSPHRASE"), "{help}");
    assert!(!help.contains("--passphrase"), "{help}");
}

#[test]
fn a_transport_error_names_the_url_tried() {
    let sandbox = TestSandbox::start();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = run(sandbox.cli().env("IBKR_BASE_URL", &url).arg("token"));
    let stderr = out.assert_error(4);
    assert!(
        stderr.contains(&format!("{url}/oauth2/api/v1/token")),
        "{stderr}"
    );
}

#[test]
fn tls_to_a_plain_http_port_says_so() {
    let sandbox = TestSandbox::start();
    let https = sandbox.running.base_url().replace("http://", "https://");
    let out = run(sandbox.cli().env("IBKR_BASE_URL", &https).arg("token"));
    let stderr = out.assert_error(4);
    assert!(stderr.contains("speaks http, not https"), "{stderr}");
    assert!(
        stderr.contains(&format!("{https}/oauth2/api/v1/token")),
        "{stderr}"
    );
    // The plain words come first; the TLS library's own words, if any, only after them.
    let plain = stderr.find("speaks http").unwrap_or(usize::MAX);
    assert!(
        stderr
            .find("InvalidContentType")
            .is_none_or(|at| at > plain),
        "{stderr}"
    );
}
