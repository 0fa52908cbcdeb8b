//! [`ServiceAuthLayer`]: the verifier's configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gw_core::{FailMode, RouteSet, SharedClock, SystemClock};
use http::Method;
use tower_layer::Layer;

use crate::backend::MemoryNonceCache;
use crate::config::{Mode, ModeSwitch};
use crate::keys::KeyStore;
use crate::nonce::NonceCache;
use crate::service::ServiceAuth;

/// Default timestamp window, both directions: 300 s.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Default body size cap: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Verifies HMAC service signatures and inserts [`gw_core::ServiceIdentity`].
///
/// Which requests are verified, and how strictly, is decided per request on the
/// normalized path: an [`exempt`](Self::exempt) match is never verified; otherwise the most
/// specific [`group`](Self::group) gives the mode (or the [`default_mode`](Self::default_mode),
/// `enforce` unless changed), capped by the [`ModeSwitch`].
#[derive(Clone)]
pub struct ServiceAuthLayer {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub keys: Arc<dyn KeyStore>,
    pub nonces: Arc<dyn NonceCache>,
    pub clock: SharedClock,
    pub window: i64,
    pub max_body: usize,
    pub groups: RouteSet<Mode>,
    pub exempt: RouteSet,
    pub default_mode: Mode,
    pub switch: ModeSwitch,
    pub nonce_fail_mode: FailMode,
}

impl fmt::Debug for ServiceAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("ServiceAuthLayer")
            .field("keys", &s.keys)
            .field("nonces", &s.nonces)
            .field("window_secs", &s.window)
            .field("max_body", &s.max_body)
            .field("groups", &s.groups.routes().collect::<Vec<_>>())
            .field("exempt", &s.exempt.routes().collect::<Vec<_>>())
            .field("default_mode", &s.default_mode)
            .field("switch", &s.switch.get())
            .field("nonce_fail_mode", &s.nonce_fail_mode)
            .finish()
    }
}

impl ServiceAuthLayer {
    /// A verifier using `keys`, an in-memory nonce cache, a 300 s window, a 1 MiB body cap,
    /// and `enforce` on every path.
    pub fn new(keys: impl KeyStore) -> Self {
        Self::with_shared_keys(Arc::new(keys))
    }

    /// Like [`new`](Self::new) with a store shared with other code (to update it at run time).
    pub fn with_shared_keys(keys: Arc<dyn KeyStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                keys,
                nonces: Arc::new(MemoryNonceCache::default()),
                clock: Arc::new(SystemClock),
                window: DEFAULT_WINDOW.as_secs() as i64,
                max_body: DEFAULT_MAX_BODY,
                groups: RouteSet::new(),
                exempt: RouteSet::new(),
                default_mode: Mode::Enforce,
                switch: ModeSwitch::default(),
                nonce_fail_mode: FailMode::Closed,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Uses `nonces` as the replay cache (share a Redis one between replicas).
    pub fn nonce_cache(self, nonces: impl NonceCache) -> Self {
        self.edit(|s| s.nonces = Arc::new(nonces))
    }

    /// Uses `clock` for the timestamp window.
    pub fn clock(self, clock: SharedClock) -> Self {
        self.edit(|s| s.clock = clock)
    }

    /// Sets the accepted clock difference, in both directions (whole seconds).
    pub fn window(self, window: Duration) -> Self {
        self.edit(|s| s.window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
    }

    /// Sets the body size cap; larger bodies get 413 `payload-too-large` in `enforce`.
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.edit(|s| s.max_body = bytes)
    }

    /// Sets the mode for paths that match no group.
    pub fn default_mode(self, mode: Mode) -> Self {
        self.edit(|s| s.default_mode = mode)
    }

    /// Adds a route group (gw-core route syntax, e.g. `/api/npu/*`) with its mode.
    ///
    /// # Panics
    /// If the pattern is invalid (a configuration error); use [`groups`](Self::groups) with
    /// a [`RouteSet`] built fallibly to handle it.
    pub fn group(self, route: &str, mode: Mode) -> Self {
        self.edit(|s| {
            s.groups
                .insert(route, mode)
                .unwrap_or_else(|e| panic!("svc-hmac group: {e}"));
        })
    }

    /// A path that only services call: a group in `enforce` (still capped by the switch).
    ///
    /// # Panics
    /// If the pattern is invalid.
    pub fn service_only(self, route: &str) -> Self {
        self.group(route, Mode::Enforce)
    }

    /// Replaces all route groups.
    pub fn groups(self, groups: RouteSet<Mode>) -> Self {
        self.edit(|s| s.groups = groups)
    }

    /// Adds an exempt route: never verified (frontend paths). Segment-aware:
    /// `/api/chats/*` does not cover `/api/chatsX`.
    ///
    /// # Panics
    /// If the pattern is invalid.
    pub fn exempt(self, route: &str) -> Self {
        self.edit(|s| {
            s.exempt
                .insert(route, ())
                .unwrap_or_else(|e| panic!("svc-hmac exempt: {e}"));
        })
    }

    /// Replaces all exempt routes.
    pub fn exempt_routes(self, routes: RouteSet) -> Self {
        self.edit(|s| s.exempt = routes)
    }

    /// Uses `switch` as the run-time ceiling (see [`ModeSwitch::try_from_env`]).
    pub fn mode_switch(self, switch: ModeSwitch) -> Self {
        self.edit(|s| s.switch = switch)
    }

    /// What to do when the nonce cache fails: `Closed` (default) answers 503, `Open`
    /// accepts the verified request without replay protection (logged and counted).
    pub fn nonce_fail_mode(self, mode: FailMode) -> Self {
        self.edit(|s| s.nonce_fail_mode = mode)
    }

    /// The effective mode for `method` and a normalized `path`.
    pub fn mode_for(&self, method: &Method, path: &str) -> Mode {
        self.shared.mode_for(method, path)
    }
}

impl Shared {
    pub(crate) fn mode_for(&self, method: &Method, path: &str) -> Mode {
        if self.exempt.matches(method, path) {
            return Mode::Off;
        }
        let configured = self
            .groups
            .find(method, path)
            .map_or(self.default_mode, |m| *m.value);
        configured.min(self.switch.get())
    }
}

impl<S> Layer<S> for ServiceAuthLayer {
    type Service = ServiceAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServiceAuth {
            inner,
            shared: self.shared.clone(),
        }
    }
}
