//! Giving back what an admitted request used up (the counted trial task, the consumed
//! approval) when another policy or the service inside rejects it.

use std::pin::pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::eval::{ConsumedApproval, Evaluated, within};
use crate::layer::PolicyLayer;
use crate::store::ApprovalBinding;

/// What an admitted request used up: the counted task and the consumed approval.
#[derive(Debug)]
pub(crate) struct Used {
    acquired: Option<String>,
    approval: Option<Box<ConsumedApproval>>,
}

impl Used {
    /// Takes what the trial and governor policies used up, if anything.
    pub(crate) fn take([t, g, _]: &mut [Evaluated; 3]) -> Option<Self> {
        let acquired = t.effects.acquired.take();
        let approval = g.effects.approval.take();
        (acquired.is_some() || approval.is_some()).then_some(Self { acquired, approval })
    }
}

/// Gives back what an admitted request used up when the service inside refuses it (see
/// [`ResponseFuture`](crate::ResponseFuture)).
#[derive(Debug)]
pub(crate) struct Undo {
    cfg: Arc<PolicyLayer>,
    used: Used,
}

impl Undo {
    pub(crate) fn new(cfg: &Arc<PolicyLayer>, used: Used) -> Self {
        Self {
            cfg: cfg.clone(),
            used,
        }
    }

    /// Releases the task and restores the approval.
    pub(crate) async fn run(self) {
        let Self { cfg, used } = self;
        let now = cfg.clock.now();
        compensate(
            &cfg,
            used.acquired.as_deref(),
            used.approval.as_deref(),
            now,
        )
        .await;
    }
}

/// Undoes what admitted policies used up when another policy, or the service inside,
/// rejected the request: the counted task and the consumed approval. Failures are logged;
/// the rejection stands.
pub(crate) async fn compensate(
    cfg: &PolicyLayer,
    acquired: Option<&str>,
    approval: Option<&ConsumedApproval>,
    now: SystemTime,
) {
    if let Some(key) = acquired {
        let release = pin!(cfg.trial.store.release(key));
        match within(cfg.trial.settings.timeout, release).await.0 {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "could not release a trial task"),
            None => tracing::warn!("timed out releasing a trial task"),
        }
    }
    if let Some(a) = approval {
        let binding = ApprovalBinding {
            action: &a.action,
            resource: &a.resource,
            user_id: &a.user_id,
        };
        let store = &cfg.governor.store;
        let restore = pin!(store.restore(&a.token, binding, a.expires_at, now));
        match within(cfg.governor.settings.timeout, restore).await.0 {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "could not restore an approval"),
            None => tracing::warn!("timed out restoring an approval"),
        }
    }
}
