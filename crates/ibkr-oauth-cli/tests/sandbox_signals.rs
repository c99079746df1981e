//! `ibkr-oauth sandbox` catches Ctrl-C and SIGTERM from the moment its ready line is out.
//!
//! In process, through the library: the output writer sends the signal while the ready line
//! is being written, a moment no test of the binary can hit every time. A signal with no
//! handler yet ends this whole test binary, so this file holds one test, and tokio's handlers,
//! once installed, stay for the process.
#![cfg(unix)]

use std::io::Write;

use ibkr_oauth_cli::commands::sandbox::READY_LINE;
use ibkr_oauth_cli::{LocalTime, exit, run};

/// Collects the output, and sends this process `signal` when the ready line is written.
struct SignalOnReady {
    signal: &'static str,
    output: Vec<u8>,
}

impl Write for SignalOnReady {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        if buf
            .windows(READY_LINE.len())
            .any(|w| w == READY_LINE.as_bytes())
        {
            // Pending for this process once `kill` has exited: delivered before this returns.
            let sent = std::process::Command::new("kill")
                .args([self.signal, &std::process::id().to_string()])
                .status()?;
            assert!(sent.success(), "{sent:?}");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_signal_sent_as_the_ready_line_is_written_stops_it_cleanly() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().expect("a directory");
        let mut stdout = SignalOnReady {
            signal,
            output: Vec::new(),
        };
        let mut stderr = Vec::new();
        let args = ["ibkr-oauth", "sandbox", "--alg", "EdDSA", "--out"];
        let code = run(
            args.iter()
                .map(Into::into)
                .chain([dir.path().as_os_str().to_owned()]),
            LocalTime::utc(),
            &mut stdout,
            &mut stderr,
        );
        let output = String::from_utf8(stdout.output).expect("UTF-8");
        assert_eq!(code, exit::SUCCESS, "{signal} {output}");
        assert_eq!(String::from_utf8(stderr).expect("UTF-8"), "");
        assert!(
            output.ends_with(&format!("{READY_LINE}\n# sandbox stopped\n")),
            "{signal} {output}"
        );
    }
}
