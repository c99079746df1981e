//! Workspace tests that cross crates.
