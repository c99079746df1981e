//! `ibkr-oauth keygen`: the key pair on disk (private key 0600), what it prints, and no
//! overwriting without `--force`.

mod common;

use common::{assert_no_jwt_or_key, cli, run};
use ibkr_oauth::PrivateKey;
use ibkr_oauth::key::KeyType;

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn writes_an_rsa_2048_pair_and_prints_the_public_key() {
    let dir = tempfile::tempdir().expect("a directory");
    let out_dir = dir.path().join("keys"); // created on the way
    let out = run(cli().arg("keygen").arg("--out").arg(&out_dir));
    let stdout = out.assert_success().to_owned();

    let private = out_dir.join("private.pem");
    let public = out_dir.join("public.pem");
    let key = PrivateKey::from_pem_file(&private).expect("a usable private key");
    assert_eq!((key.key_type(), key.bits()), (KeyType::Rsa, 2048));
    let public_pem = std::fs::read_to_string(&public).expect("the public key");
    assert_eq!(public_pem, key.public_key_pem());
    assert!(stdout.contains(public_pem.trim_end()), "{stdout}");
    assert!(stdout.contains("kid) \"main\""), "{stdout}");
    assert!(stdout.contains("export IBKR_KEY_ID=main"), "{stdout}");
    assert!(stdout.contains("export IBKR_PRIVATE_KEY="), "{stdout}");
    assert_no_jwt_or_key(&out);
    let private_pem = std::fs::read_to_string(&private).expect("the private key");
    for line in private_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!stdout.contains(line), "{stdout}");
    }
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);
    assert_eq!(entries(&out_dir), ["private.pem", "public.pem"]);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("a directory");
    let first = run(cli()
        .arg("keygen")
        .arg("--out")
        .arg(dir.path())
        .args(["--alg", "EdDSA"]));
    first.assert_success();
    let private = dir.path().join("private.pem");
    let before = std::fs::read(&private).expect("the key");

    let again = run(cli()
        .arg("keygen")
        .arg("--out")
        .arg(dir.path())
        .args(["--alg", "EdDSA"]));
    let stderr = again.assert_error(2);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&private).expect("the key"),
        before,
        "untouched"
    );

    // Only the public key exists: still refused, and the private key is not written either.
    let other = tempfile::tempdir().expect("a directory");
    std::fs::write(other.path().join("public.pem"), "keep me").expect("written");
    let out = run(cli().arg("keygen").arg("--out").arg(other.path()));
    out.assert_error(2);
    assert!(!other.path().join("private.pem").exists());
}

#[test]
fn force_replaces_the_files_and_the_private_key_is_still_0600() {
    let dir = tempfile::tempdir().expect("a directory");
    let private = dir.path().join("private.pem");
    std::fs::write(&private, "old").expect("written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = run(cli()
        .arg("keygen")
        .arg("--out")
        .arg(dir.path())
        .args(["--alg", "ES256", "--kid", "k2", "--force"]));
    let stdout = out.assert_success();
    assert!(stdout.contains("EC P-256"), "{stdout}");
    assert!(stdout.contains("export IBKR_KEY_ID=k2"), "{stdout}");
    let key = PrivateKey::from_pem_file(&private).expect("the new key");
    assert_eq!(key.key_type(), KeyType::EcP256);
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);
}

#[test]
fn explicit_file_paths_and_the_algorithm_setting() {
    let dir = tempfile::tempdir().expect("a directory");
    let private = dir.path().join("a/secret.pem");
    let public = dir.path().join("b/shared.pem");
    let out = run(cli()
        .args(["keygen", "--alg", "ps256"])
        .arg("--private-key-file")
        .arg(&private)
        .arg("--public-key-file")
        .arg(&public));
    let stdout = out.assert_success();
    // PS256 is not what an RSA key signs by default: the settings say so.
    assert!(stdout.contains("export IBKR_ALG=PS256"), "{stdout}");
    assert!(PrivateKey::from_pem_file(&private).is_ok());
    assert!(
        std::fs::read_to_string(&public)
            .expect("public")
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    let same = dir.path().join("same.pem");
    let out = run(cli()
        .arg("keygen")
        .arg("--private-key-file")
        .arg(&same)
        .arg("--public-key-file")
        .arg(&same));
    out.assert_error(2);
}

/// The names in `dir`, sorted: no temporary file may be left behind.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn one_file_spelled_two_ways_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("a directory");
    std::fs::create_dir(dir.path().join("real")).expect("a directory");
    std::os::unix::fs::symlink("real", dir.path().join("link")).expect("a link");
    let refused = |private: &str, public: &str| {
        format!(
            "ibkr-oauth: the private key ({private}) and the public key ({public}) would be \
             written to the same file; give two different paths"
        )
    };
    let pairs = [
        ("a.pem", "./a.pem"),
        ("real/../a.pem", "a.pem"),
        ("link/a.pem", "real/a.pem"),
        // Directories that do not exist yet.
        ("new/deeper/../a.pem", "new/a.pem"),
    ];
    for (private, public) in pairs {
        for force in [false, true] {
            let mut command = cli();
            command
                .current_dir(dir.path())
                .args(["keygen", "--alg", "EdDSA", "--private-key-file", private])
                .args(["--public-key-file", public]);
            if force {
                command.arg("--force");
            }
            let out = run(&mut command);
            assert_eq!(out.assert_error(2), refused(private, public), "{force}");
            assert_eq!(entries(dir.path()), ["link", "real"], "{private} {force}");
            assert_eq!(entries(&dir.path().join("real")), [] as [&str; 0]);
        }
    }

    // An existing key stays what it was.
    std::fs::write(dir.path().join("a.pem"), "the old private key").expect("written");
    let out = run(cli()
        .current_dir(dir.path())
        .args(["keygen", "--private-key-file", "a.pem"])
        .args(["--public-key-file", "./a.pem", "--force"]));
    assert_eq!(out.assert_error(2), refused("a.pem", "./a.pem"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.pem")).expect("the key"),
        "the old private key"
    );
}

#[test]
fn a_public_key_that_cannot_be_written_leaves_the_old_pair_untouched() {
    let dir = tempfile::tempdir().expect("a directory");
    let private = dir.path().join("private.pem");
    // A name one byte longer than a file system takes.
    let public = dir.path().join(format!("{}.pem", "p".repeat(252)));
    let expected_error = std::fs::File::create(&public).expect_err("too long a name");

    // With --force: the old private key must survive.
    std::fs::write(&private, "the old private key").expect("written");
    let out = run(cli()
        .args(["keygen", "--alg", "EdDSA", "--force", "--private-key-file"])
        .arg(&private)
        .arg("--public-key-file")
        .arg(&public));
    assert_eq!(
        std::fs::read_to_string(&private).expect("the old key"),
        "the old private key"
    );
    assert_eq!(entries(dir.path()), ["private.pem"]);
    let refused = format!(
        "ibkr-oauth: could not write {}; check the path and its permissions: {expected_error}",
        public.display()
    );
    assert_eq!(out.assert_error(2), refused);

    // Without: no half of a pair is left.
    std::fs::remove_file(&private).expect("removed");
    let out = run(cli()
        .args(["keygen", "--alg", "EdDSA", "--private-key-file"])
        .arg(&private)
        .arg("--public-key-file")
        .arg(&public));
    assert_eq!(entries(dir.path()), [] as [&str; 0]);
    assert_eq!(out.assert_error(2), refused);
}

#[cfg(unix)]
#[test]
fn force_replaces_a_link_and_never_writes_through_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let target = dir.path().join("elsewhere.pem");
    std::fs::write(&target, "not to be touched").expect("written");
    let private = dir.path().join("private.pem");
    std::os::unix::fs::symlink(&target, &private).expect("a link");
    let out = run(cli()
        .arg("keygen")
        .arg("--out")
        .arg(dir.path())
        .args(["--alg", "EdDSA", "--force"]));
    out.assert_success();
    assert_eq!(
        std::fs::read_to_string(&target).expect("the target"),
        "not to be touched"
    );
    assert!(
        std::fs::symlink_metadata(&private)
            .expect("the key")
            .file_type()
            .is_file()
    );
    assert_eq!(mode(&private), 0o600);
    assert_eq!(
        PrivateKey::from_pem_file(&private)
            .expect("the new key")
            .key_type(),
        KeyType::Ed25519
    );
    assert_eq!(
        entries(dir.path()),
        ["elsewhere.pem", "private.pem", "public.pem"]
    );
}

/// The leak check finds a JWT but not the `eyJ` that random base64 in a public key can hold.
#[test]
fn the_jwt_check_tells_a_token_from_base64_that_happens_to_hold_eyj() {
    assert!(common::contains_jwt(
        "token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n"
    ));
    assert!(common::contains_jwt(
        r#"{"access_token":"eyJhbGciOiJFUzI1NiJ9.e30.c2ln"}"#
    ));
    assert!(!common::contains_jwt(
        "-----BEGIN PUBLIC KEY-----\nXZ+yw0IsCFMgH9VgD5qkjMTYsufyqhsE+ZF0IuYEGTp7eyJXZ+yw\n-----END PUBLIC KEY-----\n"
    ));
}
