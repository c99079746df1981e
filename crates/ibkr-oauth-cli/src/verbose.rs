//! `-v`/`-vv`/`-vvv` and `RUST_LOG`: the SDK's tracing events on stderr. The SDK never puts a
//! secret in an event (tokens and assertions are `[redacted]`), so any level is safe to share.

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::EnvFilter;

/// The filter for `-v` counted `verbosity` times: this project's crates at info, debug or
/// trace, everything else one step quieter.
pub fn filter_for(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "off",
        1 => "warn,ibkr_oauth=info,ibkr_oauth_cli=info,ibkr_oauth_sandbox=info",
        2 => "info,ibkr_oauth=debug,ibkr_oauth_cli=debug,ibkr_oauth_sandbox=debug",
        _ => "debug,ibkr_oauth=trace,ibkr_oauth_cli=trace,ibkr_oauth_sandbox=trace",
    }
}

/// Starts logging to stderr for as long as the guard lives: the `-v` level when given, else
/// `RUST_LOG` when set, else nothing. A `RUST_LOG` that does not parse is reported once on
/// stderr and ignored.
pub fn init(verbosity: u8) -> Option<DefaultGuard> {
    let filter = if verbosity > 0 {
        EnvFilter::new(filter_for(verbosity))
    } else {
        let value = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        match EnvFilter::try_new(&value) {
            Ok(filter) => filter,
            Err(_) => {
                eprintln!("ibkr-oauth: RUST_LOG does not parse as a log filter; ignored");
                return None;
            }
        }
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .finish();
    Some(tracing::subscriber::set_default(subscriber))
}
