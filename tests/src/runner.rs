//! Runs every scenario and reports one line each, then the summary line.

use core::fmt::Write;

use crate::harness::Harness;
use crate::scenarios::SCENARIOS;

/// The outcome of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed.
    pub failed: usize,
}

impl Summary {
    /// Whether every scenario passed (and there was at least one).
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// Runs every scenario whose name contains `filter` (all when empty), writing
/// `PASS name` / `FAIL name: reason` lines and finally `conformance: N passed, M failed`.
pub fn run_all(harness: &mut dyn Harness, filter: &str, out: &mut dyn Write) -> Summary {
    let mut summary = Summary { passed: 0, failed: 0 };
    for scenario in SCENARIOS.iter().filter(|s| s.name.contains(filter)) {
        match (scenario.run)(harness) {
            Ok(()) => {
                summary.passed += 1;
                let _ = writeln!(out, "PASS {}", scenario.name);
            }
            Err(failure) => {
                summary.failed += 1;
                let _ = writeln!(out, "FAIL {}: {}", scenario.name, failure);
            }
        }
    }
    let _ = writeln!(out, "conformance: {} passed, {} failed", summary.passed, summary.failed);
    summary
}
