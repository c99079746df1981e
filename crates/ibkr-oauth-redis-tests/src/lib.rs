//! Support for the tests and benches of `ibkr-oauth-redis`: a real `redis-server` per test on a
//! free loopback port, the sandbox with one registered client, and fleets of separate processes
//! (the `fleet-member` binary) that share one token through Redis.
//!
//! Not published; nothing here is API.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ibkr_oauth::provider::ClientFetch;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient, TokenRequest};
use ibkr_oauth_redis::{EncryptionKey, RedisTokenSource, RedisTokenSourceBuilder};
use ibkr_oauth_sandbox::{RegisteredClient, RunningSandbox, Sandbox};

/// The registered client id.
pub const CLIENT: &str = "fleet-client";
/// The kid of its key.
pub const KID: &str = "main";
/// A scope it may ask for.
pub const SCOPE: &str = "sso-sessions.write";
/// Another scope it may ask for.
pub const OTHER_SCOPE: &str = "echo.read";
/// The generous bound on any wait in these tests (never a timed assertion: a limit that only a
/// hang reaches).
pub const LIMIT: Duration = Duration::from_secs(60);

/// A `redis-server` of its own on a free loopback port, without persistence; stopped on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    paused: bool,
    /// Extra arguments (TLS, a password); with them the server is only checked to listen.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            child: None,
            paused: false,
            extra: Vec::new(),
        };
        server.spawn();
        server
    }

    /// Starts a server with extra arguments: `{port}` in them is replaced by its free port,
    /// and the plain port is off when they hold `--tls-port`. Waits until it listens.
    pub fn start_with(args: &[&str]) -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            child: None,
            paused: false,
            extra: args
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let tls = self.extra.iter().any(|a| a == "--tls-port");
        let plain_port = if tls {
            "0".to_owned()
        } else {
            self.port.to_string()
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &plain_port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/ensure-redis installs it)");
        self.child = Some(child);
        let started = Instant::now();
        if !self.extra.is_empty() {
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(started.elapsed() < LIMIT, "redis-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        loop {
            if let Ok(mut c) = self.connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            assert!(started.elapsed() < LIMIT, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A plain connection for the test's own look at the data.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        client.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Runs one command (panics if Redis fails: the test looks at its own server).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut c = self.connection().expect("connect to the test's redis");
        cmd.query(&mut c).expect("a command on the test's redis")
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                signal(child.id(), "CONT");
                self.paused = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stops the process (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
            self.paused = true;
        }
    }

    /// Continues a paused server (SIGCONT).
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
            self.paused = false;
        }
    }

    /// Calls per command since the last [`reset_stats`](Self::reset_stats), from
    /// `INFO commandstats` (the `INFO` and `CONFIG` of the test itself left out).
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats"));
        let mut calls = BTreeMap::new();
        for line in info.lines() {
            // cmdstat_get:calls=3,usec=...
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            if name == "info" || name.starts_with("config") {
                continue;
            }
            let n = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_owned(), n);
        }
        calls
    }

    /// Zeroes `INFO commandstats`.
    pub fn reset_stats(&self) {
        let _: () = self.query(redis::cmd("CONFIG").arg("RESETSTAT"));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// The sandbox with one client whose key the fleet signs with, and the settings a member needs.
pub struct Fleet {
    /// The sandbox playing IBKR.
    pub sandbox: RunningSandbox,
    /// The client's private key.
    pub key: PrivateKey,
    /// The key as a PEM file, for the member processes.
    pub key_file: tempfile::NamedTempFile,
    /// The fleet's encryption key, base64.
    pub encryption_key: String,
}

impl Fleet {
    /// A sandbox granting tokens of `lifetime`.
    pub async fn start(lifetime: Duration) -> Self {
        let key = PrivateKey::generate(Algorithm::EdDSA).expect("generate a key");
        let sandbox = Sandbox::builder()
            .client(
                RegisteredClient::new(CLIENT)
                    .key(KID, key.public_key_pem())
                    .allowed_scopes([SCOPE, OTHER_SCOPE]),
            )
            .expires_in(lifetime)
            .request_log_capacity(100_000)
            .start()
            .await
            .expect("start the sandbox");
        let mut key_file = tempfile::NamedTempFile::new().expect("a temp file");
        let pem = key.to_pkcs8_pem().expect("export the key");
        key_file
            .write_all(pem.as_bytes())
            .expect("write the key file");
        let encryption_key = EncryptionKey::generate_base64()
            .expect("a random key")
            .to_string();
        Self {
            sandbox,
            key,
            key_file,
            encryption_key,
        }
    }

    /// Token requests the sandbox granted.
    pub fn tokens_issued(&self) -> u64 {
        self.sandbox.tokens_issued()
    }

    /// The real fetch against the sandbox.
    pub fn fetch(&self) -> ClientFetch {
        client_fetch(&self.sandbox.base_url(), self.key.clone())
    }

    /// The fetch of the client against the sandbox, asking for `scope`.
    pub fn fetch_scope(&self, scope: &str) -> ClientFetch {
        client_fetch_scope(&self.sandbox.base_url(), self.key.clone(), scope)
    }

    /// The identity of the client's tokens for `scope` against the sandbox.
    pub fn identity(&self, scope: &str) -> ibkr_oauth_redis::TokenIdentity {
        ibkr_oauth_redis::TokenIdentity::new(
            CLIENT,
            KID,
            ibkr_oauth::IBKR_PRODUCTION,
            self.sandbox.base_url(),
            Some(scope),
        )
    }

    /// A builder for an in-process member (its own provider and Redis connection, as a
    /// separate process would have).
    pub fn source(&self, redis_url: &str) -> RedisTokenSourceBuilder {
        let key = EncryptionKey::from_base64(&self.encryption_key).expect("the fleet's key");
        RedisTokenSource::builder(redis_url, CLIENT, key, self.fetch())
    }

    /// A member process (see `fleet-member`), configured but not started.
    pub fn member(&self, redis_url: &str) -> MemberCommand {
        let mut cmd = Command::new(member_binary());
        cmd.env("FLEET_BASE_URL", self.sandbox.base_url())
            .env("FLEET_KEY_FILE", self.key_file.path())
            .env("FLEET_REDIS_URL", redis_url)
            .env("FLEET_ENC_KEY", &self.encryption_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        MemberCommand(cmd)
    }
}

/// The fetch of `key`'s client against `base_url`.
pub fn client_fetch(base_url: &str, key: PrivateKey) -> ClientFetch {
    client_fetch_scope(base_url, key, SCOPE)
}

/// The fetch of `key`'s client against `base_url`, asking for `scope`.
pub fn client_fetch_scope(base_url: &str, key: PrivateKey, scope: &str) -> ClientFetch {
    let client = TokenClient::builder()
        .base_url(base_url)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a loopback URL");
    let signer = Signer::builder(CLIENT, KID, key).build().expect("a signer");
    let request = TokenRequest::builder()
        .signer(signer)
        .scope(scope)
        .build()
        .expect("a request");
    ClientFetch::new(client, request)
}

/// Where cargo put the member binary (set for this crate's tests and benches).
pub fn member_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_fleet-member") {
        return PathBuf::from(path);
    }
    beside_current_exe("fleet-member")
}

/// Where cargo put the pacing member binary.
pub fn pace_member_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_pace-member") {
        return PathBuf::from(path);
    }
    beside_current_exe("pace-member")
}

/// A pacing member (`pace-member`) on `redis_url`, configured but not started (`PACE_*`).
pub fn pace_member(redis_url: &str) -> MemberCommand {
    let mut cmd = Command::new(pace_member_binary());
    cmd.env("PACE_REDIS_URL", redis_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    MemberCommand(cmd)
}

fn beside_current_exe(name: &str) -> PathBuf {
    // The library is also built outside tests: find the binary beside the current executable.
    let exe = std::env::current_exe().expect("the current executable");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join(name)
}

/// A member process to be started.
pub struct MemberCommand(Command);

impl MemberCommand {
    /// Sets one of the member's settings (`FLEET_*`).
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.env(name, value);
        self
    }

    /// Starts it; it prints `ready` and then waits for [`Member::go`].
    pub fn spawn(mut self) -> Member {
        let mut child = self.0.spawn().expect("start fleet-member");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(String::new()));
        let (out, err) = (Arc::clone(&lines), Arc::clone(&errors));
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut e = err.lock().unwrap();
                    e.push_str(&line);
                    e.push('\n');
                }
            }),
        ];
        Member {
            child,
            stdin,
            lines,
            errors,
            readers,
        }
    }
}

/// A running member process.
pub struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Member {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until it printed a line starting with `prefix` (bounded by [`LIMIT`]).
    pub fn wait_for_line(&self, prefix: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < LIMIT,
                "member {} printed no {prefix:?} line; stdout {:?}, stderr {}",
                self.pid(),
                self.lines(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Tells it to start (it waits for a line on stdin after printing `ready`).
    pub fn go(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"go\n");
            let _ = stdin.flush();
        }
    }

    /// Everything it printed on stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything it printed on stderr so far (its warnings).
    pub fn stderr(&self) -> String {
        self.errors.lock().unwrap().clone()
    }

    /// The ids of the tokens it printed, in order, without repeats.
    pub fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = Vec::new();
        for line in self.lines() {
            if let Some(id) = line
                .strip_prefix("token ")
                .and_then(|r| r.split(' ').next())
                && tokens.last().map(String::as_str) != Some(id)
            {
                tokens.push(id.to_owned());
            }
        }
        tokens
    }

    /// Waits for it to exit (bounded by [`LIMIT`]; killed past it) and returns whether it
    /// exited with success.
    pub fn wait(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for a member") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status.success();
            }
            if started.elapsed() > LIMIT {
                let _ = self.child.kill();
                panic!(
                    "member {} did not exit; stderr {}",
                    self.pid(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A short, non-secret id of a token for the members' output: the first 8 bytes of its
/// SHA-256, in hex.
pub fn token_id(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tracing subscriber that keeps every event's fields as text, for looking at warnings.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<String>>);

impl Recorder {
    /// Everything recorded so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(&format!("{} ", event.metadata().level()));
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
