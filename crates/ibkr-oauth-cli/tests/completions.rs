//! `ibkr-oauth completions SHELL`: a script each shell recognises, naming the subcommands.

mod common;

use common::{cli, run};

#[test]
fn each_shell_gets_its_own_script() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ibkr-oauth"),
        ("fish", "complete -c ibkr-oauth"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(cli().args(["completions", shell]));
        let script = out.assert_success();
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("doctor") && script.contains("jwk"),
            "{shell}"
        );
    }
    let out = run(cli().args(["completions", "tcsh"]));
    assert_eq!(out.code, 2, "{out:#?}");
}
