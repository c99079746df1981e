//! `ibkr-oauth sandbox` as a process: it prints its settings, `token` works with exactly those,
//! and it stops on Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdout, Stdio};

use common::{assert_no_jwt_or_key, cli, run};

/// A running `ibkr-oauth sandbox`, killed if a test fails before stopping it.
struct SandboxProcess {
    child: Child,
    /// Kept open: the sandbox prints a last line when it stops.
    stdout: BufReader<ChildStdout>,
    output: Vec<String>,
    settings: Vec<(String, String)>,
}

impl SandboxProcess {
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        let mut child = cli()
            .arg("sandbox")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sandbox starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut output = Vec::new();
        let mut settings = Vec::new();
        // Up to the ready line; end of output (the process failed) ends the loop too.
        for line in (&mut stdout).lines() {
            let line = line.expect("UTF-8 output");
            if let Some((name, value)) =
                line.strip_prefix("export ").and_then(|a| a.split_once('='))
            {
                // As the shell reads it: a value with spaces comes single-quoted.
                let value = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(value);
                settings.push((name.to_owned(), value.to_owned()));
            }
            let ready = line == "# serving; press Ctrl-C to stop";
            output.push(line);
            if ready {
                break;
            }
        }
        Self {
            child,
            stdout,
            output,
            settings,
        }
    }

    fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn token(&self, args: &[&str]) -> common::Run {
        self.command("token", args)
    }

    /// `ibkr-oauth SUBCOMMAND ARGS` with exactly the printed settings.
    fn command(&self, subcommand: &str, args: &[&str]) -> common::Run {
        let mut command = cli();
        for (name, value) in &self.settings {
            command.env(name, value);
        }
        run(command.arg(subcommand).args(args))
    }

    /// Ctrl-C, as a user stops it; returns the exit code, the rest of the output and stderr
    /// (the trace lines).
    #[cfg(unix)]
    fn interrupt(mut self) -> (Option<i32>, String, String) {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            let _ = self.child.kill();
        }
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let code = self.child.wait().ok().and_then(|s| s.code());
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (code, rest, stderr)
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_generated_key_pair_and_the_settings_to_use_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let sandbox = SandboxProcess::start(&[
        "--out".as_ref(),
        dir.path().as_os_str(),
        "--client-id".as_ref(),
        "my-app".as_ref(),
    ]);
    let all = sandbox.output.join("\n");
    let base_url = sandbox
        .setting("IBKR_BASE_URL")
        .expect("the base URL")
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{all}");
    assert!(all.contains(&format!("# base URL: {base_url}")), "{all}");
    assert_eq!(sandbox.setting("IBKR_CLIENT_ID"), Some("my-app"), "{all}");
    assert_eq!(sandbox.setting("IBKR_KEY_ID"), Some("main"), "{all}");
    let private_key = sandbox
        .setting("IBKR_PRIVATE_KEY")
        .expect("the key")
        .to_owned();
    assert!(private_key.ends_with("private.pem"), "{all}");
    assert!(!all.contains("PRIVATE KEY-----"), "{all}");

    let summary = sandbox.token(&["--scope", "echo.read"]);
    assert!(summary.assert_success().contains("scopes:       echo.read"));
    assert_no_jwt_or_key(&summary);
    let raw = sandbox.token(&["--raw"]);
    assert_eq!(raw.assert_success().lines().count(), 1);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private_key)
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (code, rest, stderr) = sandbox.interrupt();
        assert_eq!(code, Some(0), "{rest}");
        assert_eq!(rest, "# sandbox stopped\n");
        // One trace line per request (two token requests), and no secret in them.
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        for line in lines {
            assert!(
                line.contains("client=\"my-app\" kid=\"main\"") && line.contains("status=200"),
                "{line}"
            );
        }
        assert!(!common::contains_jwt(&stderr), "{stderr}");
    }
}

#[test]
fn a_given_public_key() {
    let dir = tempfile::tempdir().expect("a directory");
    let keygen = run(cli()
        .arg("keygen")
        .arg("--out")
        .arg(dir.path())
        .args(["--alg", "EdDSA", "--kid", "laptop"]));
    keygen.assert_success();
    let public = dir.path().join("public.pem");
    let private = dir.path().join("private.pem");

    let sandbox = SandboxProcess::start(&[
        "--public-key".as_ref(),
        public.as_os_str(),
        "--kid".as_ref(),
        "laptop".as_ref(),
    ]);
    assert_eq!(sandbox.setting("IBKR_PRIVATE_KEY"), None);
    assert!(sandbox.output.iter().any(|l| l.contains("belongs to")));
    let mut command = cli();
    for (name, value) in &sandbox.settings {
        command.env(name, value);
    }
    let out = run(command.arg("token").arg("--private-key").arg(&private));
    out.assert_success();
    assert_no_jwt_or_key(&out);
}

#[test]
fn a_public_key_that_is_not_one_is_2() {
    let dir = tempfile::tempdir().expect("a directory");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "nope").expect("written");
    let out = run(cli().arg("sandbox").arg("--public-key").arg(&bad));
    out.assert_error(2);
    let missing = dir.path().join("missing.pem");
    let out = run(cli().arg("sandbox").arg("--public-key").arg(&missing));
    out.assert_error(2);
}

#[test]
fn a_busy_port_is_2_and_leaves_no_key_files_behind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = busy.local_addr().expect("its address").port().to_string();
    let dir = tempfile::tempdir().expect("a directory");
    let keys = dir.path().join("keys");
    let refused = format!(
        "ibkr-oauth: sandbox: could not listen on 127.0.0.1:{port}: {}; pick another port or \
         address",
        std::net::TcpListener::bind(("127.0.0.1", busy.local_addr().expect("addr").port()))
            .expect_err("the port is busy")
    );

    // Into --out.
    let out = run(cli()
        .args(["sandbox", "--alg", "EdDSA", "--port", &port, "--out"])
        .arg(&keys));
    assert_eq!(out.assert_error(2), refused);
    assert!(!keys.exists(), "nothing was written");

    // Into a new temporary directory: that goes too.
    let temp = tempfile::tempdir().expect("a directory");
    let out = run(cli()
        .env("TMPDIR", temp.path())
        .args(["sandbox", "--alg", "EdDSA", "--port", &port]));
    assert_eq!(out.assert_error(2), refused);
    assert_eq!(
        std::fs::read_dir(temp.path())
            .expect("the directory")
            .count(),
        0
    );

    // A retry on a free port, without --force, works.
    let sandbox = SandboxProcess::start(&[
        "--alg".as_ref(),
        "EdDSA".as_ref(),
        "--out".as_ref(),
        keys.as_os_str(),
    ]);
    let private = keys.join("private.pem");
    assert_eq!(
        sandbox.setting("IBKR_PRIVATE_KEY"),
        Some(private.to_str().expect("UTF-8")),
        "{:?}",
        sandbox.output
    );
    sandbox.token(&[]).assert_success();
}

/// SIGTERM (a service manager's stop) ends it as Ctrl-C does.
#[cfg(unix)]
#[test]
fn sigterm_right_after_the_ready_line_stops_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut sandbox = SandboxProcess::start(&[
        "--alg".as_ref(),
        "EdDSA".as_ref(),
        "--out".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(
        sandbox.output.last().map(String::as_str),
        Some("# serving; press Ctrl-C to stop")
    );
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &sandbox.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut sandbox.stdout, &mut rest).expect("the rest");
    let status = sandbox.child.wait().expect("it exits");
    assert_eq!(status.code(), Some(0), "{status:?} {rest}");
    assert_eq!(rest, "# sandbox stopped\n");
}

#[test]
fn the_printed_settings_include_the_scopes_so_doctor_runs_every_check() {
    let sandbox = SandboxProcess::start(&[]);
    let all = sandbox.output.join("\n");
    assert_eq!(
        sandbox.setting("IBKR_SCOPE"),
        Some("sso-sessions.write echo.read echo.write"),
        "{all}"
    );
    let doctor = sandbox.command("doctor", &[]);
    let report = doctor.assert_success();
    assert!(!report.contains("[skip]"), "{report}");
    assert!(report.contains("echo/https"), "{report}");
    assert!(report.contains("echo/signed-jwt"), "{report}");
}
