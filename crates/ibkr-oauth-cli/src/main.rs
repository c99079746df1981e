//! `ibkr-oauth`: see the `ibkr_oauth_cli` library for the commands and the exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Read the local offset first: it can only be read safely while this is the only thread.
    let local = ibkr_oauth_cli::LocalTime::detect();
    let code = ibkr_oauth_cli::run(
        std::env::args_os(),
        local,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}
