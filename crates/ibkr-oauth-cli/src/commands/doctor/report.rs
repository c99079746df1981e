//! The doctor's findings: one [`Check`] a line, as text or JSON, and the exit code of the
//! first failure.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::exit;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It holds.
    Passed,
    /// It does not; the check says what to do, and carries the exit code of its class.
    Failed(u8),
    /// It could not be run: something it needs failed or was not asked for.
    Skipped,
}

/// One check: its name, what it found, what to do, and the ids to quote to IBKR.
#[derive(Debug, Clone)]
pub struct Check {
    /// `settings`, `key`, `public key`, `clock`, `token`, `scopes`, `echo/https`,
    /// `echo/signed-jwt`.
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// What it found (sanitised server text only).
    pub detail: String,
    /// What to do about a failure (or how to run a skipped check).
    pub hint: Option<String>,
    /// The response's request or trace id header (`x-request-id: ...`), on a failure.
    pub request_id: Option<String>,
}

impl Check {
    /// A check that holds.
    pub fn passed(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Passed,
            detail: detail.into(),
            hint: None,
            request_id: None,
        }
    }

    /// A check that fails with the exit code `code`.
    pub fn failed(name: &'static str, code: u8, detail: impl Into<String>) -> Self {
        Self {
            status: Status::Failed(code),
            ..Self::passed(name, detail)
        }
    }

    /// A check not run, and why.
    pub fn skipped(name: &'static str, why: impl Into<String>) -> Self {
        Self {
            status: Status::Skipped,
            ..Self::passed(name, why)
        }
    }

    /// With what to do.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// With the request id to quote, if the response had one.
    #[must_use]
    pub fn request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }

    fn status_word(&self) -> &'static str {
        match self.status {
            Status::Passed => "passed",
            Status::Failed(_) => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// Every check of one run, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds a check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The exit code of the first failed check, or [`exit::SUCCESS`].
    pub fn exit_code(&self) -> u8 {
        self.checks
            .iter()
            .find_map(|c| match c.status {
                Status::Failed(code) => Some(code),
                _ => None,
            })
            .unwrap_or(exit::SUCCESS)
    }

    /// The first failed check.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| matches!(c.status, Status::Failed(_)))
    }

    /// One line a check, `[ok]`, `[FAIL]` or `[skip]`, then a summary line.
    pub fn text(&self, heading: &str) -> String {
        let mut out = format!("{heading}\n");
        for check in &self.checks {
            let mark = match check.status {
                Status::Passed => "[ok]  ",
                Status::Failed(_) => "[FAIL]",
                Status::Skipped => "[skip]",
            };
            let _ = write!(out, "{mark} {:<15} {}", check.name, check.detail);
            if let Some(hint) = &check.hint {
                let _ = write!(out, "; {hint}");
            }
            // The SDK's messages quote the request id themselves: once is enough.
            if let Some(id) = check
                .request_id
                .as_ref()
                .filter(|id| !check.detail.contains(*id))
            {
                let _ = write!(out, " (quote to IBKR: {id})");
            }
            out.push('\n');
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Failed(_)))
            .count();
        let passed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Passed)
            .count();
        let skipped = self.checks.len() - failed - passed;
        let _ = match self.first_failure() {
            None => writeln!(out, "no check failed: {passed} passed, {skipped} skipped"),
            Some(first) => writeln!(
                out,
                "{failed} check(s) failed, {passed} passed; the first failure ({}) sets the exit \
                 code {}",
                first.name,
                self.exit_code()
            ),
        };
        out
    }

    /// The report as JSON: `{"ok", "exit_code", "checks": [{"name", "status", "detail",
    /// "hint", "request_id"}]}`.
    pub fn json(&self, extra: Value) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "status": c.status_word(),
                    "detail": c.detail,
                    "hint": c.hint,
                    "request_id": c.request_id,
                })
            })
            .collect();
        let mut value = json!({
            "ok": self.first_failure().is_none(),
            "exit_code": self.exit_code(),
            "checks": checks,
        });
        if let (Some(map), Value::Object(more)) = (value.as_object_mut(), extra) {
            map.extend(more);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_sets_the_exit_code() {
        let mut report = Report::default();
        report.push(Check::passed("settings", "all given"));
        report.push(Check::skipped("echo/https", "echo.read not granted"));
        assert_eq!(report.exit_code(), 0);
        report.push(Check::failed("clock", exit::USAGE, "10m off").hint("sync it"));
        report.push(
            Check::failed("token", exit::REFUSED, "refused")
                .request_id(Some("x-request-id: 7".into())),
        );
        assert_eq!(report.exit_code(), exit::USAGE);
        let text = report.text("doctor");
        assert!(
            text.contains("[FAIL] clock           10m off; sync it\n"),
            "{text}"
        );
        assert!(text.contains("(quote to IBKR: x-request-id: 7)"), "{text}");
        assert!(text.ends_with("sets the exit code 2\n"), "{text}");
        let json = report.json(json!({"base_url": "x"}));
        assert_eq!(json["exit_code"], 2);
        assert_eq!(json["ok"], false);
        assert_eq!(json["base_url"], "x");
        assert_eq!(json["checks"][3]["request_id"], "x-request-id: 7");
        assert_eq!(json["checks"][1]["status"], "skipped");
    }
}
