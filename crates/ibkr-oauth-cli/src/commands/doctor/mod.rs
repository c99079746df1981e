//! `ibkr-oauth doctor`: placeholder while the checks are written.

use std::io::Write;

use crate::cli::DoctorArgs;
use crate::error::Error;
use crate::output::LocalTime;

/// Runs the checks.
///
/// # Errors
/// The first failing check's error.
pub async fn run(
    _args: &DoctorArgs,
    _local: &LocalTime,
    _out: &mut dyn Write,
) -> Result<(), Error> {
    Err(Error::Internal("doctor: not written yet".into()))
}
