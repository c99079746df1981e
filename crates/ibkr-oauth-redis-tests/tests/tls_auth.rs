//! Redis as it is run in production: TLS (`rediss://`, rustls, a private CA) and a password
//! in the URL; a wrong password is a Redis failure like any other (fetch alone, warn) and
//! never shows up in a message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ibkr_oauth::ExposeSecret;
use ibkr_oauth_redis_tests::{Fleet, RedisServer};

const DAY: Duration = Duration::from_secs(86_399);

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .status()
        .expect("run openssl (the CLI makes the test's certificates)");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 and localhost, in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

fn secret(token: &ibkr_oauth::Token) -> String {
    token.access_token().expose_secret().to_owned()
}

#[test]
fn rediss_with_a_private_ca_and_a_password() {
    let recorder = ibkr_oauth_redis_tests::Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async { rediss().await })
    });
    let log = recorder.text();
    assert!(result, "{log}");
    assert!(!log.contains("PASSWORD-42"), "{log}");
}

async fn rediss() -> bool {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let redis = RedisServer::start_with(&[
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "PASSWORD-42",
    ]);
    let fleet = Fleet::start(DAY).await;
    let url = format!("rediss://default:PASSWORD-42@localhost:{}", redis.port());
    let ca_pem = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let a = fleet
        .source(&url)
        .tls_root_certificates(ca_pem.clone())
        .build()
        .unwrap();
    let b = fleet
        .source(&url)
        .tls_root_certificates(ca_pem)
        .build()
        .unwrap();
    let token = a.access_token().await.unwrap();
    if secret(&b.access_token().await.unwrap()) != secret(&token) || fleet.tokens_issued() != 1 {
        return false; // the fleet did not share over TLS (the log says why)
    }
    assert!(!format!("{a:?}").contains("PASSWORD-42"));
    // Roots for a URL without TLS: refused at build, not ignored.
    let plain = fleet
        .source(&url.replacen("rediss://", "redis://", 1))
        .tls_root_certificates(b"-----BEGIN CERTIFICATE-----".to_vec())
        .build();
    assert!(matches!(
        plain,
        Err(ibkr_oauth_redis::Error::InvalidConfig(_))
    ));

    // Without the CA (system roots only), the server's certificate is not trusted: the
    // process fetches alone, and still gets a token.
    let untrusting = fleet.source(&url).build().unwrap();
    let own = untrusting.access_token().await.unwrap();
    assert_ne!(secret(&own), secret(&token));
    assert_eq!(fleet.tokens_issued(), 2);
    true
}

#[test]
fn a_wrong_password_fetches_alone_and_is_never_printed() {
    let recorder = ibkr_oauth_redis_tests::Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async {
            let redis = RedisServer::start_with(&["--requirepass", "RIGHT-PASSWORD"]);
            let fleet = Fleet::start(DAY).await;
            let good_url = format!("redis://:RIGHT-PASSWORD@127.0.0.1:{}", redis.port());
            let bad_url = format!("redis://:WRONG-PASSWORD@127.0.0.1:{}", redis.port());
            let good = fleet.source(&good_url).build().unwrap();
            let other = fleet.source(&good_url).build().unwrap();
            let bad = fleet.source(&bad_url).build().unwrap();
            let token = good.access_token().await.unwrap();
            assert_eq!(secret(&other.access_token().await.unwrap()), secret(&token));
            let own = bad.access_token().await.unwrap();
            assert_ne!(secret(&own), secret(&token));
            assert_eq!(fleet.tokens_issued(), 2);
        });
    });
    let log = recorder.text();
    assert!(log.contains("Redis is unavailable"), "{log}");
    assert!(
        !log.contains("WRONG-PASSWORD") && !log.contains("RIGHT-PASSWORD"),
        "{log}"
    );
}
