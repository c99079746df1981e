//! Where the agent listens: a unix socket with tight permissions, or a loopback port with a
//! secret. Nothing else can be bound.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use axum::Router;
use ibkr_oauth::SecretString;
use tokio::net::{TcpListener, UnixListener};

use super::limits::{self, Limits};
use crate::error::Error;

/// The header a loopback TCP client must send, holding the agent's secret.
pub const SECRET_HEADER: &str = "x-ibkr-agent-secret";

/// What to listen on.
#[derive(Debug)]
pub enum Listen {
    /// A unix socket at `path`: mode 0600, or 0660 owned by `group` (a gid) when given.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// The group whose members may connect too.
        group: Option<u32>,
    },
    /// A loopback TCP address; every request must carry `secret` in [`SECRET_HEADER`].
    Loopback {
        /// The address (its IP must be loopback).
        addr: SocketAddr,
        /// The shared secret.
        secret: SecretString,
    },
}

/// The variable both sides read for the socket's path: `serve` listens there, and a client
/// connects there (`ibkr-oauth serve --print-socket` prints the path either way).
pub const SOCKET_VAR: &str = "IBKR_AGENT_SOCKET";

/// The socket path `serve` uses by default: `$IBKR_AGENT_SOCKET` when set, else
/// `$XDG_RUNTIME_DIR/ibkr-oauth.sock` (a directory only this user can enter), else
/// `/tmp/ibkr-oauth-<uid>.sock` (where `$XDG_RUNTIME_DIR` is unset: containers, cron).
pub fn default_socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_VAR).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ibkr-oauth.sock"),
        _ => {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(0);
            PathBuf::from(format!("/tmp/ibkr-oauth-{uid}.sock"))
        }
    }
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: Listener,
    secret: Option<SecretString>,
    limits: Limits,
}

enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tcp(TcpListener),
}

impl Bound {
    /// Binds `listen`, refusing anything but a unix socket or a loopback address.
    ///
    /// # Errors
    /// [`Error::Agent`] for a non-loopback address, an empty secret, a socket path another
    /// agent listens on, or a bind/permission failure.
    pub async fn bind(listen: Listen) -> Result<Self, Error> {
        match listen {
            Listen::Loopback { addr, secret } => {
                if !addr.ip().is_loopback() {
                    return Err(Error::Agent(format!(
                        "{addr} is not a loopback address; the agent hands out tokens only to \
                         this machine: use 127.0.0.1, or a unix socket"
                    )));
                }
                if ibkr_oauth::ExposeSecret::expose_secret(&secret)
                    .trim()
                    .len()
                    < 16
                {
                    return Err(Error::Agent(
                        "the agent's secret is shorter than 16 characters; use a long random \
                         value (e.g. `openssl rand -hex 32`)"
                            .into(),
                    ));
                }
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    Error::Agent(format!(
                        "could not listen on {addr} ({e}); pick another port"
                    ))
                })?;
                Ok(Self {
                    listener: Listener::Tcp(listener),
                    secret: Some(secret),
                    limits: Limits::for_this_process(),
                })
            }
            Listen::Unix { path, group } => {
                let listener = bind_unix(&path, group)?;
                Ok(Self {
                    listener: Listener::Unix { listener, path },
                    secret: None,
                    limits: Limits::for_this_process(),
                })
            }
        }
    }

    /// Where it listens, for a person: the socket path or the address.
    pub fn describe(&self) -> String {
        match &self.listener {
            Listener::Unix { path, .. } => format!("unix socket {}", path.display()),
            Listener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "a loopback port".into(), |a| format!("http://{a}")),
        }
    }

    /// The TCP address, when listening on loopback TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// Replaces the connection limits (by default [`Limits::for_this_process`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub(super) fn into_parts(self) -> (ServeOn, Option<SecretString>) {
        (ServeOn(self.listener, self.limits), self.secret)
    }
}

/// The listener as the server takes it.
pub(super) struct ServeOn(Listener, Limits);

impl ServeOn {
    pub(super) async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let limits = self.1;
        match self.0 {
            Listener::Tcp(listener) => {
                let accept = || async { listener.accept().await.map(|(io, _)| io) };
                limits::serve(accept, router, limits, shutdown).await;
            }
            Listener::Unix { listener, path } => {
                let accept = || async { listener.accept().await.map(|(io, _)| io) };
                limits::serve(accept, router, limits, shutdown).await;
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// Binds the socket inside a fresh private directory, sets its mode (and group), then moves
/// it into place: no moment exists where the socket is reachable with looser permissions.
fn bind_unix(path: &Path, group: Option<u32>) -> Result<UnixListener, Error> {
    let failed = |what: &str, e: std::io::Error| {
        Error::Agent(format!(
            "could not {what} {} ({e}); check the path",
            path.display()
        ))
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Agent(format!(
                "another agent listens on {}; stop it, or pick another --socket",
                path.display()
            )));
        }
        // A socket left by an agent that died: nobody listens on it.
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(Error::Agent(format!(
                "{} exists and is not a socket; pick another --socket",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| failed("remove the stale socket", e))?;
    }
    let staging = parent.join(format!(".ibkr-oauth-agent-{}", std::process::id()));
    std::fs::create_dir(&staging).map_err(|e| failed("prepare", e))?;
    let result = (|| {
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed("prepare", e))?;
        let staged = staging.join("agent.sock");
        let listener = UnixListener::bind(&staged).map_err(|e| failed("listen on", e))?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failed("set the permissions of", e))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&staged, None, Some(gid))
                .map_err(|e| failed("give the group to", e))?;
        }
        std::fs::rename(&staged, path).map_err(|e| failed("move the socket to", e))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}
