//! The [`JobStore`] trait, what it returns, and the [`Transition`] hook.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gw_core::BackendError;

use crate::event::CallbackEvent;
use crate::fsm::TransitionTable;
use crate::time::Timestamp;

/// A boxed `Send` future, as returned by [`JobStore`] and [`Transition`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSnapshot {
    /// The job id.
    pub job_id: String,
    /// Its current status.
    pub status: String,
    /// `occurred_at` of the latest applied event, if any.
    pub latest_occurred_at: Option<Timestamp>,
    /// How many events were applied.
    pub applied_events: u64,
}

/// One applied event, as kept in a job's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    /// Position in the job's history, from 1.
    pub seq: u64,
    /// The event id.
    pub event_id: String,
    /// Status before.
    pub from_status: String,
    /// Status after.
    pub to_status: String,
    /// The event's `occurred_at`.
    pub occurred_at: Timestamp,
    /// The payload fingerprint ([`CallbackEvent::fingerprint`]).
    pub fingerprint: [u8; 32],
}

/// What a [`JobStore::apply`] did (steps 3 to 7 of the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The transition was applied (204).
    Applied {
        /// Status before.
        from: String,
        /// Status after.
        to: String,
    },
    /// The same event was applied before with the same payload; nothing changed (200).
    Replayed {
        /// The job's current status.
        status: String,
    },
    /// No such job (404).
    NotFound,
    /// The event id was applied before with a different payload (409).
    PayloadMismatch,
    /// `occurred_at` is not later than the latest applied event's (409).
    OutOfOrder {
        /// `occurred_at` of the latest applied event.
        latest: Timestamp,
    },
    /// The FSM does not allow this transition (409).
    InvalidTransition {
        /// The job's current status.
        from: String,
        /// The statuses allowed from there.
        allowed: Vec<String>,
    },
}

/// Decides steps 4 to 6 for a locked job: `prior` is the fingerprint stored for this
/// event id, if it was applied before. Returns [`Outcome::Applied`] when the store
/// should apply the event. Every backend calls this, so the rules live in one place.
pub fn decide(
    job: &JobSnapshot,
    prior: Option<&[u8; 32]>,
    event: &CallbackEvent,
    table: &TransitionTable,
) -> Outcome {
    if let Some(prior) = prior {
        return if *prior == event.fingerprint() {
            Outcome::Replayed {
                status: job.status.clone(),
            }
        } else {
            Outcome::PayloadMismatch
        };
    }
    if let Some(latest) = job.latest_occurred_at
        && event.occurred_at <= latest
    {
        return Outcome::OutOfOrder { latest };
    }
    if !table.allows(&job.status, &event.status) {
        return Outcome::InvalidTransition {
            from: job.status.clone(),
            allowed: table.allowed_next(&job.status).to_vec(),
        };
    }
    Outcome::Applied {
        from: job.status.clone(),
        to: event.status.clone(),
    }
}

/// A transition about to be committed, as shown to a [`Transition`] hook.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The job id.
    pub job_id: &'a str,
    /// Status before (the status after is `event.status`).
    pub from: &'a str,
    /// The event being applied.
    pub event: &'a CallbackEvent,
    /// The event's position in the job's history, from 1.
    pub seq: u64,
}

/// A [`Transition`] hook's failure: the unit is rolled back and the caller gets a 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionError(pub String);

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transition hook failed: {}", self.0)
    }
}

impl std::error::Error for TransitionError {}

/// Application side effects run inside the same atomic unit as the transition.
///
/// `U` is what the backend hands over: `()` for the in-memory store (the hook runs under
/// the job's lock, before the change is written), the open
/// `tokio_postgres::Transaction` for PostgreSQL (after the job row and ledger are
/// written, before commit). An `Err` rolls the whole unit back.
///
/// Plain closures `Fn(&Change) -> Result<(), TransitionError>` are hooks for any `U`.
pub trait Transition<U: ?Sized>: Send + Sync + 'static {
    /// Runs the side effects of `change` in `unit`.
    fn on_transition<'a>(
        &'a self,
        unit: &'a U,
        change: &'a Change<'a>,
    ) -> BoxFuture<'a, Result<(), TransitionError>>;
}

impl<U: ?Sized, F> Transition<U> for F
where
    F: Fn(&Change<'_>) -> Result<(), TransitionError> + Send + Sync + 'static,
{
    fn on_transition<'a>(
        &'a self,
        _unit: &'a U,
        change: &'a Change<'a>,
    ) -> BoxFuture<'a, Result<(), TransitionError>> {
        let result = self(change);
        Box::pin(std::future::ready(result))
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The backend failed (answered 503).
    Backend(BackendError),
    /// The [`Transition`] hook refused (answered 500).
    Transition(TransitionError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(e) => e.fmt(f),
            Self::Transition(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<BackendError> for StoreError {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        Self::Transition(e)
    }
}

/// Where jobs, their status and their event ledger live.
///
/// [`apply`](Self::apply) is steps 3 to 7 of the contract as one atomic unit per job:
/// look the job up and lock it, check the ledger, order and FSM with [`decide`], run the
/// [`Transition`] hook and write. Concurrent calls for one job are serialized, so a
/// duplicated event applies exactly once.
pub trait JobStore: Send + Sync + 'static {
    /// Applies `event` to job `job_id` atomically.
    fn apply<'a>(
        &'a self,
        job_id: &'a str,
        event: &'a CallbackEvent,
        table: &'a TransitionTable,
    ) -> BoxFuture<'a, Result<Outcome, StoreError>>;

    /// Creates job `job_id` in `status`; `false` if it already exists (left unchanged).
    fn create_job<'a>(
        &'a self,
        job_id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// The job's current state.
    fn job<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, BackendError>>;

    /// The job's applied events, oldest first.
    fn history<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AppliedEvent>, BackendError>>;
}

impl<T: JobStore + ?Sized> JobStore for Arc<T> {
    fn apply<'a>(
        &'a self,
        job_id: &'a str,
        event: &'a CallbackEvent,
        table: &'a TransitionTable,
    ) -> BoxFuture<'a, Result<Outcome, StoreError>> {
        (**self).apply(job_id, event, table)
    }

    fn create_job<'a>(
        &'a self,
        job_id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        (**self).create_job(job_id, status)
    }

    fn job<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, BackendError>> {
        (**self).job(job_id)
    }

    fn history<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AppliedEvent>, BackendError>> {
        (**self).history(job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, status: &str, at: &str) -> CallbackEvent {
        let body = format!(r#"{{"event_id":"{id}","status":"{status}","occurred_at":"{at}"}}"#);
        CallbackEvent::from_json(body.as_bytes(), &TransitionTable::default()).unwrap()
    }

    #[test]
    fn decision_order() {
        let t = TransitionTable::default();
        let e = event("e2", "running", "2026-01-01T00:00:02Z");
        let job = JobSnapshot {
            job_id: "j".into(),
            status: "dispatched".into(),
            latest_occurred_at: Some(Timestamp::parse_rfc3339("2026-01-01T00:00:01Z").unwrap()),
            applied_events: 1,
        };
        assert_eq!(
            decide(&job, None, &e, &t),
            Outcome::Applied {
                from: "dispatched".into(),
                to: "running".into()
            }
        );
        // Idempotency comes before ordering and the FSM.
        let old = event("e0", "queued", "2020-01-01T00:00:00Z");
        assert!(matches!(
            decide(&job, Some(&old.fingerprint()), &old, &t),
            Outcome::Replayed { .. }
        ));
        assert_eq!(
            decide(&job, Some(&[0; 32]), &old, &t),
            Outcome::PayloadMismatch
        );
        // Equal timestamps are out of order; ordering comes before the FSM.
        let same = event("e3", "queued", "2026-01-01T00:00:01Z");
        assert!(matches!(
            decide(&job, None, &same, &t),
            Outcome::OutOfOrder { .. }
        ));
        let illegal = event("e4", "succeeded", "2026-01-01T00:00:03Z");
        assert_eq!(
            decide(&job, None, &illegal, &t),
            Outcome::InvalidTransition {
                from: "dispatched".into(),
                allowed: vec!["running".into(), "cancelled".into()]
            }
        );
    }
}
