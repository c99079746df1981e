//! `ibkr-oauth serve`: the local token agent ([`crate::agent`]) with a `TokenProvider` kept
//! fresh by its refresher, and the sink files ([`crate::sink`]) it keeps current, until Ctrl-C
//! or SIGTERM.

use std::io::Write;
use std::sync::Arc;

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{SecretString, TokenSource};

use super::emit;
use super::sandbox::StopSignals;

mod gateway;
use crate::agent::{Bound, Listen, default_socket_path, install_metrics, serve_with_metrics};
use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::error::Error;
use crate::sink::{Format, Sink};
use crate::watch::{Event, watch};

/// The variable that holds the secret of a loopback TCP agent.
pub const AGENT_SECRET_VAR: &str = "IBKR_AGENT_SECRET";

/// Serves tokens until a signal; prints where it listens first.
///
/// # Errors
/// Configuration errors before any I/O; [`Error::Agent`] when it cannot listen; [`Error::Sink`]
/// when a sink file is refused at start.
pub async fn run(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Error> {
    if args.print_socket {
        let path = args.socket.clone().unwrap_or_else(default_socket_path);
        return emit(out, &format!("{}\n", path.display()));
    }
    // Where to listen first: a bad group or a missing secret stops it before any request.
    let listen = match args.listen {
        Some(addr) => Listen::Loopback {
            addr,
            secret: secret()?,
        },
        None => Listen::Unix {
            path: args.socket.clone().unwrap_or_else(default_socket_path),
            group: args.group.as_deref().map(gid).transpose()?,
        },
    };
    let sinks = sinks(&args.sink, &args.sink_json)?;
    let mut settings = Settings::new(&args.signer, Some(&args.request))?;
    let client = settings.client()?;
    let token_url = client.token_url();
    let signer = settings.signer()?;
    // The gateway opens SSO sessions: its token needs that scope.
    let scope = match settings.scope() {
        None if args.gateway.gateway => Some(ibkr_oauth::session::SSO_SESSIONS_SCOPE),
        scope => scope,
    };
    let (source, refresher) = token_source(client, signer.clone(), scope, &args.redis)?;
    let stop = StopSignals::listen()?;
    let bound = Bound::bind(listen).await?;
    // Keeps the token fresh even when no client asks; stops with the command.
    let _refresher = refresher;
    if args.gateway.gateway {
        let metrics = if args.metrics {
            Some(install_metrics()?)
        } else {
            None
        };
        // Before the session starts: a bad TLS file or a busy port stops the command before
        // this process takes part in the fleet's election.
        let cp = gateway::cp_listener(args).await?;
        let gateway = gateway::start(args, &settings, signer, source, metrics).await?;
        gateway::serve(gateway, cp, bound, stop, out).await?;
        return emit(out, "ibkr-oauth serve: stopped\n");
    }
    let files = if sinks.is_empty() {
        String::new()
    } else {
        let paths: Vec<String> = sinks.iter().map(|s| s.path.display().to_string()).collect();
        format!(" and in {}", paths.join(", "))
    };
    emit(
        out,
        &format!(
            "ibkr-oauth serve: handing out tokens on {}{files} (Ctrl-C to stop)\n",
            bound.describe()
        ),
    )?;
    let metrics = if args.metrics {
        Some(install_metrics()?)
    } else {
        None
    };
    let watcher = tokio::spawn(watch(
        Arc::clone(&source),
        report_and_write(token_url, sinks.clone()),
    ));
    let served = serve_with_metrics(source, bound, metrics, stop.wait()).await;
    watcher.abort();
    for sink in &sinks {
        sink.remove();
    }
    served?;
    emit(out, "ibkr-oauth serve: stopped\n")
}

/// The sinks of `--sink` (bare token) and `--sink-json`, each checked where it goes.
pub(crate) fn sinks(token: &[String], json: &[String]) -> Result<Vec<Sink>, Error> {
    let specs = token
        .iter()
        .map(|s| (s, Format::Token))
        .chain(json.iter().map(|s| (s, Format::Json)));
    let mut sinks = Vec::new();
    for (spec, format) in specs {
        let sink = Sink::parse(spec, format)?;
        sink.check()?;
        sinks.push(sink);
    }
    Ok(sinks)
}

/// The process's token source for `scope` and its refresher: one `TokenProvider`, or the
/// fleet's shared source in front of Redis.
pub(crate) fn token_source(
    client: ibkr_oauth::TokenClient,
    signer: ibkr_oauth::Signer,
    scope: Option<&str>,
    redis: &crate::cli::RedisArgs,
) -> Result<(Arc<dyn TokenSource>, ibkr_oauth::provider::Refresher), Error> {
    Ok(match &redis.redis {
        Some(url) => {
            let shared = crate::redis::source(url, client, signer, scope)?;
            let refresher = shared.spawn_refresher()?;
            (shared, refresher)
        }
        None => {
            let mut builder = TokenProvider::builder(client, signer);
            if let Some(scope) = scope {
                builder = builder.scope(scope);
            }
            let provider = builder.build()?;
            let refresher = provider.spawn_refresher()?;
            (Arc::new(provider), refresher)
        }
    })
}

/// What `serve` does with the watcher's events: writes each new token to the sinks, and says
/// on stderr at once (without `-v`) when no token can be had, and when one comes after all.
/// Straight to the process's stderr: the events come from a background task, after `run`'s
/// writer has returned to its caller.
fn report_and_write(token_url: String, sinks: Vec<Sink>) -> impl FnMut(Event<'_>) + Send {
    move |event| {
        let mut stderr = std::io::stderr();
        match event {
            Event::New { token, recovered } => {
                for failure in crate::sink::write_all(&sinks, token) {
                    let _ = writeln!(
                        stderr,
                        "ibkr-oauth serve: {}",
                        crate::exit::one_line(&crate::exit::chain(&failure.into()))
                    );
                }
                if recovered {
                    let _ = writeln!(stderr, "ibkr-oauth serve: got a token from {token_url}");
                }
            }
            Event::Failed(error) => {
                let _ = writeln!(
                    stderr,
                    "ibkr-oauth serve: no token from {token_url} yet: {}; still retrying \
                     (clients get 502 until then)",
                    crate::exit::one_line(&crate::exit::chain(&Error::Sdk(error.clone())))
                );
            }
        }
    }
}

fn secret() -> Result<SecretString, Error> {
    match std::env::var(AGENT_SECRET_VAR) {
        Ok(value) if !value.trim().is_empty() => Ok(SecretString::from(value)),
        _ => Err(Error::Agent(format!(
            "--listen needs a shared secret in {AGENT_SECRET_VAR} (e.g. `export \
             {AGENT_SECRET_VAR}=$(openssl rand -hex 32)`); clients send it in the \
             x-ibkr-agent-secret header"
        ))),
    }
}

/// A group's id from its number or its name, either of which must be in /etc/group: chown
/// takes 4294967295 as "leave the group", so an unknown group would silently fall back to the
/// user's own.
fn gid(group: &str) -> Result<u32, Error> {
    let number = group.parse::<u32>().ok();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group || number == Some(id)).then_some(id)
        })
        .find(|id| *id != u32::MAX)
        .ok_or_else(|| {
            Error::Agent(format!(
                "no group {} {:?} in /etc/group; give the name or number of an existing group",
                if number.is_some() {
                    "numbered"
                } else {
                    "named"
                },
                ibkr_oauth::sanitize(group, 64)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_number_and_name() {
        assert_eq!(gid("0").unwrap(), 0);
        assert_eq!(gid("root").unwrap(), 0);
        assert!(matches!(gid("no-such-group-here"), Err(Error::Agent(_))));
        // Issue 20: a number no group has (4294967295 is chown's "leave it") is refused.
        assert!(matches!(gid("4294967295"), Err(Error::Agent(_))));
        assert!(matches!(gid("4294967294"), Err(Error::Agent(_))));
    }
}
