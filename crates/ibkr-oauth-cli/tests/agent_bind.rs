//! Issue 20: the agent's staging directory had a predictable name (`.ibkr-oauth-agent-<pid>`
//! beside the socket), so anyone able to write there could stop it from starting by making
//! that name first. It is random now.

use std::os::unix::fs::PermissionsExt as _;

use ibkr_oauth_cli::agent::{Bound, Listen};

#[tokio::test]
async fn a_directory_taken_beforehand_does_not_stop_the_agent() {
    let dir = tempfile::tempdir().expect("a dir");
    // What another user would make: the old name, not writable by the agent.
    let taken = dir
        .path()
        .join(format!(".ibkr-oauth-agent-{}", std::process::id()));
    std::fs::create_dir(&taken).expect("the squatter's directory");
    std::fs::set_permissions(&taken, std::fs::Permissions::from_mode(0o555)).expect("mode");
    let path = dir.path().join("agent.sock");
    let bound = Bound::bind(Listen::Unix {
        path: path.clone(),
        group: None,
    })
    .await
    .expect("the agent binds whatever names are taken");
    let mode = std::fs::metadata(&path)
        .expect("the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(bound);
    // The staging directory is gone; only the squatter's is left beside the socket.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".ibkr-oauth-agent-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}
