//! The local token agent (`ibkr-oauth serve`'s server) against the sandbox: 100 concurrent
//! clients of a cold agent make one token request; a client without the socket's permission
//! or without the secret is refused; a non-loopback address is refused; invalidation and
//! health; and the token never reaches the agent's logs.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{CLIENT_ID, KEY_ID, TestSandbox};
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{PrivateKey, SecretString, Signer, TokenClient, TokenSource};
use ibkr_oauth_cli::agent::{Bound, Listen, SECRET_HEADER, serve};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

fn provider(sandbox: &TestSandbox) -> Arc<dyn TokenSource> {
    let key = PrivateKey::from_pem_file(&sandbox.private_key).expect("key");
    let signer = Signer::builder(CLIENT_ID, KEY_ID, key)
        .build()
        .expect("signer");
    let client = TokenClient::builder()
        .base_url(sandbox.running.base_url())
        .build()
        .expect("client");
    Arc::new(
        TokenProvider::builder(client, signer)
            .build()
            .expect("provider"),
    )
}

/// A raw HTTP/1.1 exchange over the agent's socket: (status, body).
async fn unix_request(path: &Path, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

struct Agent {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    async fn start(
        source: Arc<dyn TokenSource>,
        listen: Listen,
    ) -> (Self, Option<std::net::SocketAddr>) {
        let bound = Bound::bind(listen).await.expect("bound");
        let addr = bound.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(source, bound, async {
                let _ = stopped.await;
            })
            .await
            .expect("served");
        });
        (
            Self {
                stop: Some(stop),
                task,
            },
            addr,
        )
    }

    /// An agent on a unix socket at `path` (mode 0600).
    async fn on_socket(
        source: Arc<dyn TokenSource>,
        path: &Path,
    ) -> (Self, Option<std::net::SocketAddr>) {
        let listen = Listen::Unix {
            path: path.to_path_buf(),
            group: None,
        };
        Self::start(source, listen).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn socket_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    // Traversable by others, so that only the socket's own mode keeps them out.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("mode");
    let path = dir.path().join("agent.sock");
    (dir, path)
}

#[test]
fn a_hundred_clients_of_a_cold_agent_make_one_token_request() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    let (_dir, path) = socket_dir();
    sandbox.runtime.block_on(async {
        let (agent, _) = Agent::on_socket(source, &path).await;
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let clients: Vec<_> = (0..100)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { unix_request(&path, "GET", "/token", "").await })
            })
            .collect();
        let mut tokens = std::collections::HashSet::new();
        for client in clients {
            let (status, body) = client.await.expect("client");
            assert_eq!(status, 200, "{body}");
            let json: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(json["token_type"], "Bearer");
            assert!(json["expires_at"].as_str().is_some(), "RFC 3339: {json}");
            tokens.insert(json["access_token"].as_str().expect("token").to_owned());
        }
        assert_eq!(tokens.len(), 1, "one token for all");
        agent.stop().await;
        assert!(!path.exists(), "the socket is removed at shutdown");
    });
    assert_eq!(sandbox.running.tokens_issued(), 1, "one token request");
}

#[test]
fn a_client_without_the_socket_permission_is_refused() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    let (_dir, path) = socket_dir();
    sandbox.runtime.block_on(async {
        let (agent, _) = Agent::on_socket(source, &path).await;
        // Another user (nobody) tries to connect: the 0600 socket refuses it.
        let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\nsys.exit(0)";
        let status = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .uid(65534)
            .gid(65534)
            .status()
            .expect("python3 runs");
        assert_eq!(status.code(), Some(13), "nobody may not connect");
        // The owner may.
        assert_eq!(unix_request(&path, "GET", "/healthz", "").await.0, 200);
        agent.stop().await;
    });
}

use std::os::unix::process::CommandExt as _;

#[test]
fn loopback_tcp_needs_the_secret_and_only_loopback_binds() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    sandbox.runtime.block_on(async {
        let secret = "0123456789abcdef0123456789abcdef";
        let refused = Bound::bind(Listen::Loopback {
            addr: "0.0.0.0:0".parse().unwrap(),
            secret: SecretString::from(secret),
        })
        .await;
        assert!(matches!(
            refused,
            Err(ibkr_oauth_cli::error::Error::Agent(_))
        ));

        let (agent, addr) = Agent::start(
            source,
            Listen::Loopback {
                addr: "127.0.0.1:0".parse().unwrap(),
                secret: SecretString::from(secret),
            },
        )
        .await;
        let url = format!("http://{}/token", addr.expect("tcp"));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let none = http.get(&url).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401);
        let wrong = http
            .get(&url)
            .header(SECRET_HEADER, "x".repeat(32))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let right = http
            .get(&url)
            .header(SECRET_HEADER, secret)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200);
        agent.stop().await;
    });
    assert_eq!(
        sandbox.running.tokens_issued(),
        1,
        "refused clients caused no token request"
    );
}

#[test]
fn invalidate_takes_the_refused_token_and_health_reports() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    let (_dir, path) = socket_dir();
    sandbox.runtime.block_on(async {
        let (agent, _) = Agent::on_socket(source, &path).await;
        let (_, body) = unix_request(&path, "GET", "/token", "").await;
        let first: Value = serde_json::from_str(&body).unwrap();
        let report = serde_json::json!({ "access_token": first["access_token"] }).to_string();
        let (status, body) = unix_request(&path, "POST", "/token/invalidate", &report).await;
        assert_eq!((status, body.as_str()), (200, r#"{"invalidated":true}"#));
        let (status, _) = unix_request(&path, "POST", "/token/invalidate", "{}").await;
        assert_eq!(status, 400);
        // A late report of the same token does not drop the new one.
        let (_, body) = unix_request(&path, "GET", "/token", "").await;
        let second: Value = serde_json::from_str(&body).unwrap();
        assert_ne!(first["access_token"], second["access_token"]);
        let (_, body) = unix_request(&path, "POST", "/token/invalidate", &report).await;
        assert_eq!(body, r#"{"invalidated":false}"#);
        let (status, body) = unix_request(&path, "GET", "/healthz", "").await;
        assert_eq!(status, 200, "{body}");
        agent.stop().await;
    });
    assert_eq!(sandbox.running.tokens_issued(), 2);
}

/// Every event's fields, formatted.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn the_agent_never_logs_a_token() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    let (_dir, path) = socket_dir();
    let recorder = Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async {
            let (agent, _) = Agent::on_socket(source, &path).await;
            let (_, body) = unix_request(&path, "GET", "/token", "").await;
            let json: Value = serde_json::from_str(&body).unwrap();
            let token = json["access_token"].as_str().unwrap().to_owned();
            let report = serde_json::json!({ "access_token": token }).to_string();
            unix_request(&path, "POST", "/token/invalidate", &report).await;
            agent.stop().await;
            token
        })
    });
    let logged = recorder.0.lock().unwrap().clone();
    assert!(!logged.is_empty(), "the agent logged something");
    assert!(!logged.contains(&token), "the token reached the logs");
}

#[test]
fn unknown_routes_and_wrong_methods_get_a_body_that_says_what_is_served() {
    let sandbox = TestSandbox::start();
    let source = provider(&sandbox);
    let (_dir, path) = socket_dir();
    sandbox.runtime.block_on(async {
        let (agent, _) = Agent::on_socket(source, &path).await;
        for (method, target, status) in [
            ("GET", "/nothing-here", 404),
            ("DELETE", "/token", 405),
            ("GET", "/token/invalidate", 405),
        ] {
            let (got, body) = unix_request(&path, method, target, "").await;
            assert_eq!(got, status, "{method} {target}: {body}");
            let json: Value = serde_json::from_str(&body).expect("a problem document");
            assert_eq!(json["status"], status);
            let detail = json["detail"].as_str().expect("a detail");
            assert!(detail.contains("GET /token"), "{detail}");
        }
        agent.stop().await;
    });
    assert_eq!(
        sandbox.running.tokens_issued(),
        0,
        "no token for a wrong route"
    );
}
