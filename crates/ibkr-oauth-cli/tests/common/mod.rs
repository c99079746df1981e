//! Shared by the end-to-end tests: the real binary with a clean environment, a sandbox running
//! in the test process (on its own runtime) with a key written to a temporary directory, and
//! the checks that no secret reached the output.
#![allow(dead_code, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

use ibkr_oauth::{Algorithm, ExposeSecret, PrivateKey};
use ibkr_oauth_sandbox::{RegisteredClient, RunningSandbox, Sandbox};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ibkr-oauth");

pub const CLIENT_ID: &str = "cli-test-client";
pub const KEY_ID: &str = "main";

/// Every variable the command reads: removed so that the caller's environment never leaks in.
pub const VARS: [&str; 12] = [
    "IBKR_USERNAME",
    "IBKR_SESSION_IP",
    "IBKR_SSO_TOKEN",
    "IBKR_PRIVATE_KEY_PASSPHRASE",
    "RUST_LOG",
    "IBKR_CLIENT_ID",
    "IBKR_KEY_ID",
    "IBKR_PRIVATE_KEY",
    "IBKR_SCOPE",
    "IBKR_BASE_URL",
    "IBKR_AUDIENCE",
    "IBKR_ALG",
];

/// The binary, with none of the command's variables set.
pub fn cli() -> Command {
    let mut command = Command::new(BIN);
    for var in VARS {
        command.env_remove(var);
    }
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    command
}

/// What a run printed, and its exit code.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    Run {
        code: status
            .code()
            .expect("the binary exited, not killed by a signal"),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    }
}

impl Run {
    /// The run failed with `code` and said why on stderr in one line, without a panic.
    pub fn assert_error(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(self.stdout.is_empty(), "{self:#?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:#?}");
        assert!(self.stderr.starts_with("ibkr-oauth: "), "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        assert!(!self.stderr.contains("backtrace"), "{self:#?}");
        self.stderr.trim_end()
    }

    pub fn assert_success(&self) -> &str {
        assert_eq!(self.code, 0, "{self:#?}");
        assert!(self.stderr.is_empty(), "{self:#?}");
        &self.stdout
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Whether `text` holds a compact JWS/JWT: a run of base64url characters that starts `eyJ`
/// (`{"` encoded) and has three dot-separated parts. A bare `eyJ` is not enough: it turns up
/// by chance inside a printed public key's base64 about once in 700 keys.
pub fn contains_jwt(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .any(|word| word.starts_with("eyJ") && word.split('.').count() == 3)
}

/// No JWT (an access token or an assertion) and no private key in the output.
pub fn assert_no_jwt_or_key(run: &Run) {
    let all = run.all();
    assert!(!contains_jwt(&all), "a JWT was printed: {run:#?}");
    assert!(
        !all.contains("PRIVATE KEY"),
        "a private key was printed: {run:#?}"
    );
}

/// A sandbox on its own runtime in the test process, with one client whose key lies in a
/// temporary directory.
pub struct TestSandbox {
    // Declared first: dropped (stopping the server) before the runtime it runs on.
    pub running: RunningSandbox,
    pub runtime: tokio::runtime::Runtime,
    pub dir: TempDir,
    pub private_key: PathBuf,
    pub private_pem: String,
}

impl TestSandbox {
    /// ES256: quick to generate. The demo and keygen tests cover RSA.
    pub fn start() -> Self {
        Self::start_with(Algorithm::ES256)
    }

    pub fn start_with(algorithm: Algorithm) -> Self {
        Self::start_client(algorithm, |client| client)
    }

    /// A sandbox whose one client `configure` shapes (scopes...), its key registered under
    /// [`KEY_ID`].
    pub fn start_client(
        algorithm: Algorithm,
        configure: impl FnOnce(RegisteredClient) -> RegisteredClient,
    ) -> Self {
        Self::start_lasting(algorithm, configure, None, |builder| builder)
    }

    /// A sandbox whose tokens live `lifetime` (a few seconds: refreshes without long waits).
    pub fn start_short_lived(lifetime: std::time::Duration) -> Self {
        Self::start_lasting(
            Algorithm::ES256,
            |client| client,
            Some(lifetime),
            |builder| builder,
        )
    }

    /// As [`start_client`](Self::start_client), with the sandbox's builder shaped by `build`
    /// (pacing, session settings...).
    pub fn start_built(
        algorithm: Algorithm,
        configure: impl FnOnce(RegisteredClient) -> RegisteredClient,
        build: impl FnOnce(ibkr_oauth_sandbox::SandboxBuilder) -> ibkr_oauth_sandbox::SandboxBuilder,
    ) -> Self {
        Self::start_lasting(algorithm, configure, None, build)
    }

    fn start_lasting(
        algorithm: Algorithm,
        configure: impl FnOnce(RegisteredClient) -> RegisteredClient,
        lifetime: Option<std::time::Duration>,
        build: impl FnOnce(ibkr_oauth_sandbox::SandboxBuilder) -> ibkr_oauth_sandbox::SandboxBuilder,
    ) -> Self {
        let key = PrivateKey::generate(algorithm).expect("a key");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let private_key = dir.path().join("private.pem");
        let private_pem = key.to_pkcs8_pem().expect("PEM").to_string();
        std::fs::write(&private_key, &private_pem).expect("the key is written");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let running = runtime
            .block_on({
                let builder = build(Sandbox::builder().client(configure(
                    RegisteredClient::new(CLIENT_ID).key(KEY_ID, key.public_key_pem()),
                )));
                match lifetime {
                    Some(lifetime) => builder.expires_in(lifetime),
                    None => builder,
                }
                .start()
            })
            .expect("the sandbox starts");
        Self {
            running,
            runtime,
            dir,
            private_key,
            private_pem,
        }
    }

    /// The binary, configured through the environment for this sandbox's client.
    pub fn cli(&self) -> Command {
        let mut command = cli();
        command
            .env("IBKR_BASE_URL", self.running.base_url())
            .env("IBKR_CLIENT_ID", CLIENT_ID)
            .env("IBKR_KEY_ID", KEY_ID)
            .env("IBKR_PRIVATE_KEY", &self.private_key);
        command
    }

    /// Checks [`assert_no_jwt_or_key`], and that no assertion the sandbox received and no line
    /// of the private key's body appears in the output.
    pub fn assert_no_secret(&self, run: &Run) {
        assert_no_jwt_or_key(run);
        let all = run.all();
        for request in self.running.requests() {
            if let Some(assertion) = &request.form.client_assertion {
                assert!(!all.contains(assertion.expose_secret()), "{run:#?}");
            }
        }
        for line in self.private_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!all.contains(line), "{run:#?}");
        }
    }
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A redis-server on a free loopback port, stopped on drop.
pub struct Redis {
    child: std::process::Child,
    pub url: String,
}

impl Redis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/ensure-redis installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Redis {
    /// Kills the server (SIGKILL) and waits for it: Redis is gone for its clients.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet encryption key for the tests: 32 bytes, base64.
pub const REDIS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Waits (polling every 20 ms, up to 30 s) until `ready` holds; panics with `what` otherwise.
/// For real processes whose pace the test does not set: the bound only catches a hang.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` (`TERM`, `HUP`...) to the process `pid` with kill(1).
pub fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}
