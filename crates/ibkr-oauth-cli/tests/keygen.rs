//! `ibkr-oauth keygen`: the key pair on disk (private key 0600), what it prints, and no
//! overwriting without `--force`.

mod common;

use common::{assert_no_jwt_or_key, cli, run};
use ibkr_oauth::{KeyType, PrivateKey};

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
