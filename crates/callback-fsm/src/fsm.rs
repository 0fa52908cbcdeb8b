//! [`TransitionTable`]: which status may follow which.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The job status machine, as data: for each status, the statuses allowed next.
///
/// Statuses named only as targets are terminal. The default is
/// [`job_lifecycle`](Self::job_lifecycle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionTable {
    next: Arc<BTreeMap<String, Vec<String>>>,
}

impl Default for TransitionTable {
    fn default() -> Self {
        Self::job_lifecycle()
    }
}

impl TransitionTable {
    /// A table with no statuses (every callback is refused until you [`allow`](Self::allow)).
    pub fn empty() -> Self {
        Self {
            next: Arc::new(BTreeMap::new()),
        }
    }

    /// `queued -> dispatched -> running -> succeeded | failed | cancelled`, with
    /// `cancelled` reachable from every non-terminal status.
    pub fn job_lifecycle() -> Self {
        Self::empty()
            .allow("queued", ["dispatched", "cancelled"])
            .allow("dispatched", ["running", "cancelled"])
            .allow("running", ["succeeded", "failed", "cancelled"])
    }

    /// Allows `from -> to` for every `to` (adding to what is already allowed).
    pub fn allow<I, S>(mut self, from: &str, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let map = Arc::make_mut(&mut self.next);
        let targets: Vec<String> = to.into_iter().map(Into::into).collect();
        for t in &targets {
            map.entry(t.clone()).or_default();
        }
        let entry = map.entry(from.to_owned()).or_default();
        for t in targets {
            if !entry.contains(&t) {
                entry.push(t);
            }
        }
        self
    }

    /// Whether `status` is a status of this machine.
    pub fn is_status(&self, status: &str) -> bool {
        self.next.contains_key(status)
    }

    /// Whether `status` has no way out.
    pub fn is_terminal(&self, status: &str) -> bool {
        self.allowed_next(status).is_empty()
    }

    /// The statuses allowed after `from` (empty for terminal or unknown ones).
    pub fn allowed_next(&self, from: &str) -> &[String] {
        self.next.get(from).map_or(&[], Vec::as_slice)
    }

    /// Whether `from -> to` is allowed.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.allowed_next(from).iter().any(|s| s == to)
    }

    /// Every status, sorted.
    pub fn statuses(&self) -> impl Iterator<Item = &str> {
        self.next.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lifecycle() {
        let t = TransitionTable::default();
        assert!(t.allows("queued", "dispatched"));
        assert!(t.allows("dispatched", "running"));
        for end in ["succeeded", "failed", "cancelled"] {
            assert!(t.allows("running", end));
            assert!(t.is_terminal(end));
        }
        for from in ["queued", "dispatched", "running"] {
            assert!(t.allows(from, "cancelled"), "{from}");
            assert!(!t.is_terminal(from));
        }
        assert!(!t.allows("queued", "running"));
        assert!(!t.allows("succeeded", "running"));
        assert!(!t.allows("running", "running"));
        assert!(!t.is_status("paused"));
        assert_eq!(t.statuses().count(), 6);
    }

    #[test]
    fn custom_table_extends() {
        let t = TransitionTable::job_lifecycle()
            .allow("running", ["running", "failed"])
            .allow("failed", ["queued"]);
        assert!(t.allows("running", "running"));
        assert_eq!(
            t.allowed_next("running"),
            ["succeeded", "failed", "cancelled", "running"]
        );
        assert!(t.allows("failed", "queued"));
        assert!(TransitionTable::empty().allowed_next("queued").is_empty());
    }
}
