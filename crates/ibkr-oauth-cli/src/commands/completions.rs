//! `ibkr-oauth completions SHELL`: the shell's completion script, from the command line's own
//! definition (clap_complete), so it never falls behind a new flag.

use std::io::Write;

use clap::CommandFactory as _;

use super::emit;
use crate::cli::{Cli, CompletionsArgs};
use crate::error::Error;

/// Writes the completion script for `args.shell` to `out`.
///
/// # Errors
/// [`Error::Output`] if `out` cannot be written.
pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ibkr-oauth", &mut script);
    emit(out, &String::from_utf8_lossy(&script))
}
