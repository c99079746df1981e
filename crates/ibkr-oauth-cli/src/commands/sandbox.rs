//! `ibkr-oauth sandbox`: the local token endpoint on a loopback port, for one client, until
//! Ctrl-C; prints the client settings that work against it.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::PrivateKey;
use ibkr_oauth_sandbox::{RegisteredClient, Sandbox};

use super::keygen::{self, KeyPaths};
use super::{describe_key, emit};
use crate::cli::SandboxArgs;
use crate::error::Error;
use crate::output::shell_assignment;

/// The line printed once the settings are out, the sandbox serves and Ctrl-C and SIGTERM are
/// caught: a reader of the output can stop reading there, and stop the sandbox at once.
pub const READY_LINE: &str = "# serving; press Ctrl-C to stop";

/// The scopes the printed settings ask for: an SSO session, and both echo endpoints.
pub const SCOPES: &str = "sso-sessions.write echo.read echo.write";

/// Starts the sandbox, prints its base URL and the client settings, and serves until Ctrl-C
/// (or SIGTERM).
///
/// # Errors
/// A public key that cannot be read or registered, a port that cannot be bound, key files that
/// cannot be written (nothing is written when the port cannot be bound), signals that cannot be
/// listened for.
pub async fn run(args: &SandboxArgs, out: &mut dyn Write) -> Result<(), Error> {
    // A directory made for the key pair is removed again if the sandbox does not start.
    let mut made_dir = MadeDir(None);
    let (public_pem, generated) = match &args.public_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|source| Error::File {
                action: "read the public key",
                path: path.clone(),
                source,
            })?;
            (pem, None)
        }
        None => {
            let algorithm = args.alg.unwrap_or_default();
            let paths = match &args.files.out {
                Some(_) => KeyPaths::resolve(&args.files, Path::new(".")),
                None if args.files.private_key_file.is_some()
                    && args.files.public_key_file.is_some() =>
                {
                    KeyPaths::resolve(&args.files, Path::new("."))
                }
                None => {
                    let dir = made_dir.0.insert(fresh_temp_dir()?);
                    KeyPaths::resolve(&args.files, dir)
                }
            };
            keygen::check_free(&paths, args.files.force)?;
            let key = PrivateKey::generate(algorithm)?;
            let public = key.public_key_pem();
            (public, Some((key, paths, algorithm)))
        }
    };
    let client = RegisteredClient::new(&args.client_id);
    let client = match args.alg {
        Some(alg) => client.key_with_algorithm(&args.key_id, alg.as_str().parse()?, public_pem),
        None => client.key(&args.key_id, public_pem),
    };
    let running = Sandbox::builder()
        .client(client)
        .audience(&args.audience)
        .expires_in(Duration::from_secs(args.expires_in))
        // One line per request on stderr: time, client id, kid, outcome, status; no secret.
        .trace_requests(true)
        .start_on(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            args.port.unwrap_or(0),
        )))
        .await?;
    // Written only now that the port is bound: a start that fails (a busy --port) leaves no
    // files behind that a retry without --force would refuse to overwrite.
    let generated = match generated {
        Some((key, paths, algorithm)) => {
            if let Err(error) = keygen::write_key_pair(&key, &paths, args.files.force) {
                running.shutdown().await;
                return Err(error);
            }
            Some((paths, describe_key(&key), algorithm))
        }
        None => None,
    };
    made_dir.keep();
    // Listening before the ready line is out: a reader may stop the sandbox as soon as it
    // sees it.
    let stop = match StopSignals::listen() {
        Ok(stop) => stop,
        Err(error) => {
            running.shutdown().await;
            return Err(error);
        }
    };

    let mut text = format!(
        "# ibkr-oauth sandbox: a local stand-in of IBKR's token endpoint\n# base URL: {}\n# token \
         endpoint: POST {}\n",
        running.base_url(),
        running.token_url()
    );
    let private_key = match &generated {
        Some((paths, description, algorithm)) => {
            text.push_str(&format!(
                "# generated an {description} key pair for {algorithm}: {} (mode 0600) and {}\n",
                keygen::absolute(&paths.private).display(),
                keygen::absolute(&paths.public).display(),
            ));
            Some(keygen::absolute(&paths.private))
        }
        None => None,
    };
    text.push_str("# client settings:\n");
    let mut export = |name: &str, value: &str| {
        text.push_str(&format!("export {}\n", shell_assignment(name, value)));
    };
    export("IBKR_BASE_URL", &running.base_url());
    export("IBKR_CLIENT_ID", &args.client_id);
    export("IBKR_KEY_ID", &args.key_id);
    if let Some(path) = &private_key {
        export("IBKR_PRIVATE_KEY", &path.to_string_lossy());
    }
    export("IBKR_AUDIENCE", running.audience());
    // The scopes the first API calls need (the sandbox grants any): without them doctor skips
    // the echo checks and a first call is a 403.
    export("IBKR_SCOPE", SCOPES);
    let algorithm = args.alg.or(generated.as_ref().map(|g| g.2));
    if let Some(alg) = algorithm.filter(|a| keygen::needs_alg_setting(*a)) {
        export("IBKR_ALG", alg.as_str());
    }
    if private_key.is_none() {
        if let Some(public) = &args.public_key {
            text.push_str(&format!(
                "# and IBKR_PRIVATE_KEY: the private key file that belongs to {}\n",
                public.display()
            ));
        }
    }
    text.push_str("# then, in another shell: ibkr-oauth token\n");
    text.push_str(READY_LINE);
    text.push('\n');
    emit(out, &text)?;

    stop.wait().await;
    running.shutdown().await;
    emit(out, "# sandbox stopped\n")
}

/// A new directory, only for this user, in the system's temporary directory.
fn fresh_temp_dir() -> Result<PathBuf, Error> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "ibkr-oauth-sandbox-{}-{nanos:09}",
        std::process::id()
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(&dir).map_err(|source| Error::File {
        action: "create the directory",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// A directory made by this run, removed when dropped (if still empty) unless kept.
struct MadeDir(Option<PathBuf>);

impl MadeDir {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for MadeDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            // `remove_dir` removes only an empty directory; a leftover is harmless.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Ctrl-C, and SIGTERM on Unix, caught from [`StopSignals::listen`] on: a signal that comes
/// before [`StopSignals::wait`] runs still stops the sandbox cleanly instead of killing it.
pub(crate) struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(not(unix))]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl StopSignals {
    pub(crate) fn listen() -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            // Not `tokio::signal::ctrl_c()`: it starts listening only when first polled.
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).map_err(Error::Signal)?,
                terminate: signal(SignalKind::terminate()).map_err(Error::Signal)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {
                ctrl_c: tokio::signal::windows::ctrl_c().map_err(Error::Signal)?,
            })
        }
    }

    /// Returns on the first signal (or if the runtime stops delivering them).
    pub(crate) async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        self.ctrl_c.recv().await;
    }
}
