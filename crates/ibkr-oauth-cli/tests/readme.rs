//! What the README tells a new user holds: the docs command builds the pages docs.rs builds
//! (and `make doc` builds them with -D warnings), `make test` is the one cargo command the
//! README shows, and the README says what the tests need and how to install the command.

use std::path::Path;

fn file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of a Makefile target's recipe.
fn recipe(makefile: &str, target: &str) -> Vec<String> {
    makefile
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{target}:")))
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn the_readme_docs_command_builds_what_docs_rs_builds_and_ci_checks_it() {
    let readme = file("README.md");
    let manifest = file("crates/ibkr-oauth/Cargo.toml");
    let makefile = file("Makefile");
    assert!(
        readme.contains("cargo doc -p ibkr-oauth --all-features --open"),
        "the README's docs command builds every feature (middleware too)"
    );
    let metadata = manifest
        .split("[package.metadata.docs.rs]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("docs.rs metadata");
    assert!(metadata.contains("all-features = true"), "{metadata}");
    let doc = recipe(&makefile, "doc");
    assert!(
        doc.iter().any(|l| l.contains("-D warnings")
            && l.contains("doc -p ibkr-oauth --all-features --no-deps")),
        "{doc:?}"
    );
    assert!(file(".ci/run").contains("make doc"));
}

#[test]
fn make_test_is_the_one_command_the_readme_shows() {
    let makefile = file("Makefile");
    let test = recipe(&makefile, "test");
    assert_eq!(test.len(), 1, "one cargo command: {test:?}");
    let features = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FEATURES ?= --features "))
        .expect("FEATURES");
    let readme = file("README.md").replace('\n', " ");
    assert!(
        readme.contains(&format!("`cargo test --workspace --features {features}`")),
        "the README names the features of `make test`: {features}"
    );
}

#[test]
fn the_readme_says_what_the_tests_need_and_how_to_install_the_command() {
    let readme = file("README.md");
    for needed in [
        "redis-server",
        "openssl",
        "scripts/ensure-redis",
        "cargo install --path crates/ibkr-oauth-cli",
    ] {
        assert!(
            readme.contains(needed),
            "the README does not mention {needed}"
        );
    }
}
