//! [`MemoryJobStore`]: jobs in process memory, one lock per job.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use gw_core::BackendError;
use tokio::sync::Mutex;

use crate::event::CallbackEvent;
use crate::fsm::TransitionTable;
use crate::store::{
    AppliedEvent, BoxFuture, Change, JobSnapshot, JobStore, Outcome, StoreError, Transition, decide,
};

/// How often a [`MemoryJobStore`] was read and written (every method counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Job lookups (`apply`, `job`, `history`).
    pub reads: u64,
    /// Writes (applied transitions and created jobs).
    pub writes: u64,
}

struct Job {
    snapshot: JobSnapshot,
    ledger: HashMap<String, [u8; 32]>,
    history: Vec<AppliedEvent>,
}

type Hook = Arc<dyn Transition<()>>;

struct Inner {
    jobs: RwLock<HashMap<String, Arc<Mutex<Job>>>>,
    hook: Option<Hook>,
    reads: AtomicU64,
    writes: AtomicU64,
}

/// A [`JobStore`] in process memory: the default, and the reference for tests.
///
/// Each job has its own async lock, held for the whole of [`JobStore::apply`] (hook
/// included), so callbacks for one job are serialized and different jobs never wait on
/// each other. Clones share the same jobs.
#[derive(Clone)]
pub struct MemoryJobStore {
    inner: Arc<Inner>,
}

impl Default for MemoryJobStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryJobStore")
            .field("jobs", &self.read_jobs().len())
            .field("hook", &self.inner.hook.is_some())
            .finish()
    }
}

impl MemoryJobStore {
    /// An empty store without a hook.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// An empty store whose applied transitions also run `hook` (under the job's lock,
    /// before the change is written; an `Err` leaves the job unchanged).
    pub fn with_hook(hook: impl Transition<()>) -> Self {
        Self::build(Some(Arc::new(hook)))
    }

    fn build(hook: Option<Hook>) -> Self {
        Self {
            inner: Arc::new(Inner {
                jobs: RwLock::default(),
                hook,
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
            }),
        }
    }

    /// Read and write counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            reads: self.inner.reads.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
        }
    }

    fn read_jobs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Mutex<Job>>>> {
        self.inner.jobs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, job_id: &str) -> Option<Arc<Mutex<Job>>> {
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        self.read_jobs().get(job_id).cloned()
    }

    async fn apply_locked(
        &self,
        job_id: &str,
        event: &CallbackEvent,
        table: &TransitionTable,
    ) -> Result<Outcome, StoreError> {
        let Some(job) = self.get(job_id) else {
            return Ok(Outcome::NotFound);
        };
        let mut job = job.lock().await;
        let outcome = decide(&job.snapshot, job.ledger.get(&event.event_id), event, table);
        let Outcome::Applied { from, .. } = &outcome else {
            return Ok(outcome);
        };
        let seq = job.snapshot.applied_events + 1;
        if let Some(hook) = &self.inner.hook {
            let change = Change {
                job_id,
                from,
                event,
                seq,
            };
            hook.on_transition(&(), &change).await?;
        }
        let job = &mut *job;
        job.ledger
            .insert(event.event_id.clone(), event.fingerprint());
        job.history.push(AppliedEvent {
            seq,
            event_id: event.event_id.clone(),
            from_status: from.clone(),
            to_status: event.status.clone(),
            occurred_at: event.occurred_at,
            fingerprint: event.fingerprint(),
        });
        job.snapshot.status = event.status.clone();
        job.snapshot.latest_occurred_at = Some(event.occurred_at);
        job.snapshot.applied_events = seq;
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }
}

impl JobStore for MemoryJobStore {
    fn apply<'a>(
        &'a self,
        job_id: &'a str,
        event: &'a CallbackEvent,
        table: &'a TransitionTable,
    ) -> BoxFuture<'a, Result<Outcome, StoreError>> {
        Box::pin(self.apply_locked(job_id, event, table))
    }

    fn create_job<'a>(
        &'a self,
        job_id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let mut jobs = self.inner.jobs.write().unwrap_or_else(|e| e.into_inner());
        let created = !jobs.contains_key(job_id);
        if created {
            jobs.insert(
                job_id.to_owned(),
                Arc::new(Mutex::new(Job {
                    snapshot: JobSnapshot {
                        job_id: job_id.to_owned(),
                        status: status.to_owned(),
                        latest_occurred_at: None,
                        applied_events: 0,
                    },
                    ledger: HashMap::new(),
                    history: Vec::new(),
                })),
            );
            self.inner.writes.fetch_add(1, Ordering::Relaxed);
        }
        Box::pin(std::future::ready(Ok(created)))
    }

    fn job<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, BackendError>> {
        Box::pin(async move {
            match self.get(job_id) {
                Some(job) => Ok(Some(job.lock().await.snapshot.clone())),
                None => Ok(None),
            }
        })
    }

    fn history<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AppliedEvent>, BackendError>> {
        Box::pin(async move {
            match self.get(job_id) {
                Some(job) => Ok(job.lock().await.history.clone()),
                None => Ok(Vec::new()),
            }
        })
    }
}
