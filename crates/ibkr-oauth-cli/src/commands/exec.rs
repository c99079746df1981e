//! `ibkr-oauth exec [--env NAME] [--on-refresh WHAT] -- CMD ARGS...`: runs CMD with the token in
//! its environment, as Vault agent's `exec` and AWS's `credential_process` do for theirs.
//!
//! The child gets:
//! - `IBKR_ACCESS_TOKEN` (or the name of `--env`): the token at the child's start;
//! - `IBKR_ACCESS_TOKEN_FILE`: a file (mode 0600, in a directory only this user can enter,
//!   removed at exit) that always holds the current bare token, rewritten atomically on every
//!   refresh; `IBKR_TOKEN_JSON_FILE` the same as the contract's JSON object (with
//!   `expires_at`). A long-running child reads the file when it needs the token, or when told
//!   (`--on-refresh signal:HUP`).
//!
//! With `--session` (and `--username`, `IBKR_USERNAME`), `exec` also opens IBKR's SSO session
//! (the brokerage session too with `--brokerage`), keeps it alive while the child runs, and logs
//! it out when the child ends. The child gets:
//! - `IBKR_SSO_TOKEN`: the SSO bearer of its `/v1/api` calls (`Authorization: Bearer ...`);
//! - `IBKR_SSO_TOKEN_FILE`: a file that always holds the current SSO token (the session
//!   heals itself by opening a new SSO session when IBKR ends one: the file is rewritten, and
//!   `--on-refresh` acts as for a new access token);
//! - `IBKR_GATEWAY_URL`: where its `/v1/api` calls go, e.g. `https://api.ibkr.com/v1/api`.
//!
//! Key material is not passed on: `IBKR_PRIVATE_KEY`, `IBKR_PRIVATE_KEY_PASSPHRASE` and
//! `IBKR_REDIS_KEY` are removed from the child's environment. The token is never in an argument
//! (so never in `ps`), nor in the log; the environment of a process is readable by its user and
//! root only (`/proc/PID/environ`), as for any variable.
//!
//! `exec` stays the child's parent: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent
//! to it are passed to the child, and it exits with the child's code (128 + the signal's number
//! when the child was killed by one). Ctrl-C in a terminal reaches the child twice (from the
//! terminal, and passed on), as with other supervisors that do not start a new session; a
//! child that counts its SIGINTs should start under `setsid`. Before the token it handed out expires (the provider
//! refreshes from 5 minutes, or a fifth of the lifetime, before expiry), on each new token:
//! - `--on-refresh none` (the default, for jobs shorter than a token's life): the files are
//!   rewritten, the child is left alone;
//! - `--on-refresh signal:HUP` (or any of the signals above): the files are rewritten, then the
//!   child gets the signal: it rereads `$IBKR_ACCESS_TOKEN_FILE`;
//! - `--on-refresh restart`: the child gets SIGTERM (SIGKILL 10 s later if it is still there)
//!   and starts again with the new token in its environment.

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::session::{SSO_SESSIONS_SCOPE, Session, SessionEvent, SsoToken};
use ibkr_oauth::{ExposeSecret as _, Token, TokenSource};
use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use crate::cli::ExecArgs;
use crate::config::Settings;
use crate::error::Error;
use crate::sink::{Format, Sink};
use crate::watch::{Event, watch};

/// The variable that holds the token by default.
pub const TOKEN_VAR: &str = "IBKR_ACCESS_TOKEN";
/// The variable that holds the path of the file with the current bare token.
pub const TOKEN_FILE_VAR: &str = "IBKR_ACCESS_TOKEN_FILE";
/// The variable that holds the path of the file with the current token as the contract's JSON.
pub const JSON_FILE_VAR: &str = "IBKR_TOKEN_JSON_FILE";
/// With `--session`: the variable that holds the SSO token.
pub const SSO_TOKEN_VAR: &str = "IBKR_SSO_TOKEN";
/// With `--session`: the variable that holds the path of the file with the current SSO token.
pub const SSO_TOKEN_FILE_VAR: &str = "IBKR_SSO_TOKEN_FILE";
/// With `--session`: the variable that holds the base URL of `/v1/api` calls.
pub const GATEWAY_URL_VAR: &str = "IBKR_GATEWAY_URL";
/// Variables holding key material, never passed to the child.
pub const WITHHELD: [&str; 3] = [
    "IBKR_PRIVATE_KEY",
    "IBKR_PRIVATE_KEY_PASSPHRASE",
    "IBKR_REDIS_KEY",
];
/// How long a child may take to stop on SIGTERM before a restart kills it.
const RESTART_GRACE: Duration = Duration::from_secs(10);

/// The signals passed on to the child, and the names `--on-refresh signal:NAME` takes.
const SIGNALS: [(&str, Signal); 6] = [
    ("TERM", Signal::TERM),
    ("INT", Signal::INT),
    ("HUP", Signal::HUP),
    ("QUIT", Signal::QUIT),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
];

/// What to do with the child when a new token comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRefresh {
    /// Nothing but rewriting the token files.
    #[default]
    Nothing,
    /// Rewrite the files, then send the child this signal.
    Signal(Signal),
    /// Stop the child and start it again with the new token.
    Restart,
}

impl std::str::FromStr for OnRefresh {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "none" => Ok(Self::Nothing),
            "restart" => Ok(Self::Restart),
            _ => {
                let name = value.strip_prefix("signal:").ok_or_else(|| {
                    "use none, restart or signal:NAME (e.g. signal:HUP)".to_owned()
                })?;
                let name = name.trim_start_matches("SIG").to_ascii_uppercase();
                SIGNALS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| Self::Signal(*s))
                    .ok_or_else(|| {
                        "the signal is one of HUP, USR1, USR2, INT, TERM, QUIT (e.g. signal:HUP)"
                            .to_owned()
                    })
            }
        }
    }
}

/// What the child is handed: the access token and, with `--session`, the SSO token and the
/// URL its `/v1/api` calls go to.
#[derive(Debug, Clone)]
pub struct Handout {
    /// The access token.
    pub token: Arc<Token>,
    /// The SSO session's part, with `--session`.
    pub session: Option<SessionHandout>,
}

/// The SSO session's part of a [`Handout`].
#[derive(Debug, Clone)]
pub struct SessionHandout {
    /// The SSO bearer of `/v1/api` calls.
    pub sso: Arc<SsoToken>,
    /// Where `/v1/api` calls go (`{base URL}/v1/api`).
    pub gateway_url: String,
}

impl Handout {
    /// The child's variables: (name, value). The values are secrets: only for the child's
    /// environment, never for a log.
    fn variables(&self, token_var: &str) -> Vec<(String, String)> {
        let mut variables = vec![(
            token_var.to_owned(),
            self.token.access_token().expose_secret().to_owned(),
        )];
        if let Some(session) = &self.session {
            variables.push((
                SSO_TOKEN_VAR.to_owned(),
                session.sso.secret().expose_secret().to_owned(),
            ));
            variables.push((GATEWAY_URL_VAR.to_owned(), session.gateway_url.clone()));
        }
        variables
    }

    /// Whether `other` hands out something else than `self`.
    fn changed(&self, other: &Handout) -> bool {
        let sso_changed = match (&self.session, &other.session) {
            (Some(a), Some(b)) => !a.sso.same(&b.sso),
            (None, None) => false,
            _ => true,
        };
        sso_changed || !crate::watch::same(&self.token, &other.token)
    }
}

/// What changed since the child was handed its variables.
enum Update {
    Token(Arc<Token>),
    Sso(Arc<SsoToken>),
}

/// A private directory holding the token files, removed on drop.
struct TokenFiles {
    dir: PathBuf,
    token: Sink,
    json: Sink,
    /// The SSO token's file, with `--session`.
    sso: Option<Sink>,
}

impl TokenFiles {
    fn create(session: bool) -> Result<Self, Error> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("ibkr-oauth-exec-{}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|source| Error::File {
            action: "create the token directory",
            path: dir.clone(),
            source,
        })?;
        let sink = |name: &str, format| Sink {
            path: dir.join(name),
            mode: 0o600,
            format,
        };
        Ok(Self {
            token: sink("token", Format::Token),
            json: sink("token.json", Format::Json),
            sso: session.then(|| sink("sso-token", Format::Token)),
            dir,
        })
    }

    fn write(&self, handout: &Handout) -> Result<(), Error> {
        self.token.write(&handout.token)?;
        self.json.write(&handout.token)?;
        if let (Some(file), Some(session)) = (&self.sso, &handout.session) {
            file.write_text(session.sso.secret().expose_secret())?;
        }
        Ok(())
    }
}

impl Drop for TokenFiles {
    fn drop(&mut self) {
        self.token.remove();
        self.json.remove();
        if let Some(sso) = &self.sso {
            sso.remove();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Runs the child to its end and returns the exit code to exit with.
///
/// # Errors
/// Configuration errors and the first token's error before the child starts; a child that
/// cannot be started ([`Error::Exec`]).
pub async fn run(args: &ExecArgs) -> Result<u8, Error> {
    let mut settings = Settings::new(&args.signer, Some(&args.request))?;
    if args.session.session {
        settings =
            settings.with_session(args.session.username.as_deref(), args.session.ip.as_deref());
    }
    let client = settings.client()?;
    let signer = settings.signer()?;
    // The session's access token needs sso-sessions.write: the default scope with --session.
    let scope = settings
        .scope()
        .or(args.session.session.then_some(SSO_SESSIONS_SCOPE));
    let (source, _refresher) =
        super::serve::token_source(client, signer.clone(), scope, &args.redis)?;
    let sinks = super::serve::sinks(&args.sink, &args.sink_json)?;
    let session = match args.session.session {
        true => Some(open_session(args, &settings, signer, Arc::clone(&source)).await?),
        false => None,
    };
    let mut handout = Handout {
        token: source.access_token().await?,
        session: match &session {
            Some((session, gateway_url, _)) => Some(SessionHandout {
                sso: session.sso_token().await?,
                gateway_url: gateway_url.clone(),
            }),
            None => None,
        },
    };
    let files = TokenFiles::create(session.is_some())?;
    files.write(&handout)?;
    if let Some(failure) = crate::sink::write_all(&sinks, &handout.token)
        .into_iter()
        .next()
    {
        return Err(failure.into());
    }
    // Listening before the child starts: a signal from now on reaches the child.
    let mut forward = Forward::listen()?;
    let mut child = spawn(args, &handout, &files)?;

    let (updates, mut updated) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch(Arc::clone(&source), {
        let updates = updates.clone();
        move |event| match event {
            Event::New { token, .. } => {
                let _ = updates.send(Update::Token(Arc::clone(token)));
            }
            Event::Failed(error) => {
                eprintln!(
                    "ibkr-oauth exec: no new token yet: {}; the child keeps the one it has, still \
                     retrying",
                    crate::exit::one_line(&crate::exit::chain(&Error::Sdk(error.clone())))
                );
            }
        }
    }));
    let session_watcher = session.as_ref().map(|(session, _, reopened)| {
        tokio::spawn(watch_session(
            session.clone(),
            Arc::clone(reopened),
            updates,
        ))
    });

    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(Error::Exec)?,
            Some(sig) = forward.recv() => send(&child, sig),
            Some(update) = updated.recv() => {
                let mut next = handout.clone();
                match update {
                    Update::Token(token) => next.token = token,
                    Update::Sso(sso) => {
                        if let Some(session) = &mut next.session {
                            session.sso = sso;
                        }
                    }
                }
                if !next.changed(&handout) {
                    continue;
                }
                handout = next;
                if let Err(error) = files.write(&handout) {
                    eprintln!("ibkr-oauth exec: {}", crate::exit::one_line(&crate::exit::chain(&error)));
                }
                for failure in crate::sink::write_all(&sinks, &handout.token) {
                    let error = Error::from(failure);
                    eprintln!("ibkr-oauth exec: {}", crate::exit::one_line(&crate::exit::chain(&error)));
                }
                match args.on_refresh {
                    OnRefresh::Nothing => {}
                    OnRefresh::Signal(sig) => {
                        tracing::info!(signal = sig.as_raw(), "a new token: signalling the child");
                        send(&child, sig);
                    }
                    OnRefresh::Restart => {
                        tracing::info!("a new token: restarting the child");
                        stop(&mut child).await;
                        child = spawn(args, &handout, &files)?;
                    }
                }
            }
        }
    };
    watcher.abort();
    if let Some(session_watcher) = session_watcher {
        session_watcher.abort();
    }
    if let Some((session, _, _)) = session {
        if let Err(error) = session.close().await {
            eprintln!(
                "ibkr-oauth exec: the SSO session is closed here, but its logout failed: {}",
                crate::exit::one_line(&crate::exit::chain(&Error::Sdk(error)))
            );
        }
    }
    for sink in &sinks {
        sink.remove();
    }
    drop(files);
    Ok(exit_code(status))
}

/// Opens the SSO session of `exec --session` with the access tokens of `tokens`; returns it
/// with the URL the child's `/v1/api` calls go to, and what the keeper signals when it opens a
/// new SSO session.
async fn open_session(
    args: &ExecArgs,
    settings: &Settings,
    signer: ibkr_oauth::Signer,
    tokens: Arc<dyn TokenSource>,
) -> Result<(Session, String, Arc<Notify>), Error> {
    let config = settings
        .session_config()?
        .brokerage(args.session.brokerage)
        .tickle_interval(Duration::from_secs(args.session.tickle_interval))
        .build()
        .map_err(|e| Error::Sdk(e.into()))?;
    let reopened = Arc::new(Notify::new());
    let session = Session::builder(tokens, signer, config)
        .on_event({
            let reopened = Arc::clone(&reopened);
            move |event| {
                if matches!(event, SessionEvent::Reopened { brokerage: false }) {
                    reopened.notify_one();
                }
            }
        })
        .base_url(settings.base_url())
        .timeout(settings.timeout())
        .build()
        .map_err(|e| Error::Sdk(e.into()))?;
    let status = session.open().await?;
    tracing::info!(%status, "exec: SSO session open");
    let gateway_url = format!("{}/v1/api", session.base_url().trim_end_matches('/'));
    Ok((session, gateway_url, reopened))
}

/// Passes on the session's SSO token when it is not the last one passed on: looked at on each
/// change of the session's state and each time the keeper opens a new SSO session (which may
/// leave the state as it was). `exec`'s loop compares it with what the child has.
async fn watch_session(
    session: Session,
    reopened: Arc<Notify>,
    updates: mpsc::UnboundedSender<Update>,
) {
    let mut changes = session.watch();
    let mut last: Option<Arc<SsoToken>> = None;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = reopened.notified() => {}
        }
        if !changes.borrow_and_update().state.is_open() {
            continue;
        }
        let Ok(sso) = session.sso_token().await else {
            continue;
        };
        if last.as_ref().is_some_and(|l| l.same(&sso)) {
            continue;
        }
        last = Some(Arc::clone(&sso));
        if updates.send(Update::Sso(sso)).is_err() {
            return;
        }
    }
}

/// The child's exit code, or 128 + the signal that killed it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(crate::exit::FAILURE),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(crate::exit::FAILURE),
        (None, None) => crate::exit::FAILURE,
    }
}

fn spawn(args: &ExecArgs, handout: &Handout, files: &TokenFiles) -> Result<Child, Error> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Config("give the command to run after --".into()))?;
    let mut command = Command::new(program);
    command.args(rest);
    for name in WITHHELD {
        command.env_remove(name);
    }
    command
        .envs(handout.variables(&args.env))
        .env(TOKEN_FILE_VAR, &files.token.path)
        .env(JSON_FILE_VAR, &files.json.path);
    if let Some(sso) = &files.sso {
        command.env(SSO_TOKEN_FILE_VAR, &sso.path);
    }
    command
        // If `exec` itself dies on an error path, the child does not outlive it unnoticed.
        .kill_on_drop(true);
    command.spawn().map_err(|source| {
        Error::Config(format!(
            "could not start {:?} ({source}); check the command and that it is executable",
            ibkr_oauth::sanitize(&program.to_string_lossy(), 256)
        ))
    })
}

/// Sends `sig` to the child, if it still runs.
fn send(child: &Child, sig: Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// SIGTERM, then SIGKILL after [`RESTART_GRACE`]; waits for the child to end.
async fn stop(child: &mut Child) {
    send(child, Signal::TERM);
    if tokio::time::timeout(RESTART_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// The signals `exec` passes on, caught from [`Forward::listen`] on.
struct Forward {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Forward {
    fn listen() -> Result<Self, Error> {
        let streams = SIGNALS
            .iter()
            .map(|(_, sig)| {
                signal(SignalKind::from_raw(sig.as_raw()))
                    .map(|stream| (*sig, stream))
                    .map_err(Error::Signal)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { streams })
    }

    /// The next signal to pass on.
    async fn recv(&mut self) -> Option<Signal> {
        let waits = self.streams.iter_mut().map(|(sig, stream)| {
            let sig = *sig;
            Box::pin(async move { stream.recv().await.map(|()| sig) })
        });
        futures_select_all(waits).await
    }
}

/// The first of `futures` to finish.
async fn futures_select_all<F>(futures: impl Iterator<Item = F>) -> Option<Signal>
where
    F: std::future::Future<Output = Option<Signal>> + Unpin,
{
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_refresh_parses_each_choice() {
        assert_eq!("none".parse(), Ok(OnRefresh::Nothing));
        assert_eq!("restart".parse(), Ok(OnRefresh::Restart));
        assert_eq!("signal:HUP".parse(), Ok(OnRefresh::Signal(Signal::HUP)));
        assert_eq!(
            "signal:SIGUSR1".parse(),
            Ok(OnRefresh::Signal(Signal::USR1))
        );
        assert!("signal:KILL".parse::<OnRefresh>().is_err());
        assert!("sometimes".parse::<OnRefresh>().is_err());
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }
}
