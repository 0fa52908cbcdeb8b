//! Policy hot reload: by API call or by watching the policy file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use crate::cache::DecisionCache;
use crate::layer::Shared;
use crate::policy::{Policy, PolicyError};

/// Reloads the policy of a running [`RbacLayer`](crate::RbacLayer) and every service built
/// from it, without rebuilding them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    shared: Arc<Shared>,
}

impl PolicyHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Switches to `policy` (engine tables and route overrides), bumps the revision and
    /// clears the decision cache. On error the old policy stays in force.
    pub fn reload(&self, policy: &Policy) -> Result<u64, PolicyError> {
        let mapper = crate::mapping::RouteMapper::from_policy(policy)?;
        self.shared.engine.reload(policy)?;
        self.shared.mapper.store(Arc::new(mapper));
        let revision = self.invalidate();
        tracing::info!(revision, label = %policy.revision, "rbac policy reloaded");
        metrics::counter!("gw_rbac_policy_reloads_total").increment(1);
        Ok(revision)
    }

    /// Reads, validates and switches to the TOML policy at `path`.
    pub fn reload_file(&self, path: impl AsRef<std::path::Path>) -> Result<u64, PolicyError> {
        self.reload(&Policy::from_file(path)?)
    }

    /// Forgets every cached decision (bumps the revision, clears the cache): for engines
    /// whose policy changed elsewhere (an OPA server).
    pub fn invalidate(&self) -> u64 {
        let revision = self.shared.revision.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(cache) = &*self.shared.cache.load() {
            cache.clear();
        }
        revision
    }

    /// The current policy revision (starts at 1, +1 per reload or invalidation).
    pub fn revision(&self) -> u64 {
        self.shared.revision.load(Ordering::Acquire)
    }

    /// The decision cache, if the layer has one.
    pub fn cache(&self) -> Option<Arc<DecisionCache>> {
        self.shared.cache.load_full()
    }

    /// Watches the TOML policy at `path`, checking every `interval`, and reloads when its
    /// modification time or size changes. A file that fails to load is logged and counted;
    /// the policy in force stays. Stops when the task is aborted. Needs a Tokio runtime.
    pub fn watch_file(
        &self,
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let handle = self.clone();
        let path = path.into();
        // Taken now, not in the task: a change made right after this call must be seen.
        let mut last = stamp(&path);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = stamp(&path);
                if now.is_none() || now == last {
                    continue;
                }
                last = now;
                if let Err(e) = handle.reload_file(&path) {
                    tracing::error!(path = %path.display(), error = %e, "rbac policy reload failed; keeping the old policy");
                    metrics::counter!("gw_rbac_policy_reload_errors_total").increment(1);
                }
            }
        })
    }
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
