//! A JWKS URL, refreshed in the background, refetched (single-flight, rate-limited) on an
//! unknown `kid`.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::Uri;

use super::KeySource;
use super::http::{FetchError, HttpClient, HyperClient};
use crate::keys::KeySet;

type Flight = Shared<BoxFuture<'static, Result<(), FetchError>>>;

/// Keys from a JWKS URL.
///
/// - Reads load the current set from an `ArcSwap`: they never wait on a fetch.
/// - A background task refetches every `refresh_interval` (default 5 min).
/// - A token with an unknown `kid` triggers at most one refetch per
///   `refetch_interval` (default 30 s); concurrent callers join the one in flight.
/// - When the endpoint is down or serves garbage, the last good set keeps serving;
///   [`age`](KeySource::age) tells how old it is.
/// - A refetch that returns the same document keeps the set (and the token cache).
///
/// Clones share the same state.
#[derive(Clone)]
pub struct JwksSource {
    inner: Arc<Inner>,
}

struct Inner {
    uri: Uri,
    client: Arc<dyn HttpClient>,
    keys: ArcSwap<KeySet>,
    started: Instant,
    state: Mutex<State>,
    refresh_interval: Duration,
    refetch_interval: Duration,
}

#[derive(Default)]
struct State {
    in_flight: Option<Flight>,
    last_kid_refetch: Option<Instant>,
    loaded_at: Option<Instant>,
    last_error: Option<FetchError>,
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksSource")
            .field("uri", &self.inner.uri)
            .field("keys", &self.inner.keys.load().len())
            .field("refresh_interval", &self.inner.refresh_interval)
            .field("refetch_interval", &self.inner.refetch_interval)
            .finish_non_exhaustive()
    }
}

/// Configures a [`JwksSource`].
#[derive(Debug)]
pub struct JwksSourceBuilder {
    uri: Uri,
    client: Option<Arc<dyn HttpClient>>,
    refresh_interval: Duration,
    refetch_interval: Duration,
}

impl JwksSourceBuilder {
    /// Uses `client` instead of the default [`HyperClient`].
    pub fn client(mut self, client: impl HttpClient) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// How often the background task refetches (default 5 min).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every;
        self
    }

    /// The least time between two refetches caused by unknown `kid`s (default 30 s).
    pub fn refetch_interval(mut self, every: Duration) -> Self {
        self.refetch_interval = every;
        self
    }

    /// The source, with no keys yet and no background task: call
    /// [`JwksSource::fetch_now`] and [`JwksSource::spawn_refresh`] yourself.
    pub fn build(self) -> JwksSource {
        JwksSource {
            inner: Arc::new(Inner {
                uri: self.uri,
                client: self.client.unwrap_or_else(|| Arc::new(HyperClient::new())),
                keys: ArcSwap::from_pointee(KeySet::default()),
                started: Instant::now(),
                state: Mutex::new(State::default()),
                refresh_interval: self.refresh_interval,
                refetch_interval: self.refetch_interval,
            }),
        }
    }

    /// Builds, fetches once (an error is returned but the source still works and keeps
    /// retrying), and starts the background refresh. Needs a Tokio runtime.
    pub async fn start(self) -> (JwksSource, Result<(), FetchError>) {
        let source = self.build();
        let first = source.fetch_now().await;
        source.spawn_refresh();
        (source, first)
    }
}

impl JwksSource {
    /// A builder for the JWKS at `uri`.
    pub fn builder(uri: Uri) -> JwksSourceBuilder {
        JwksSourceBuilder {
            uri,
            client: None,
            refresh_interval: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
        }
    }

    /// Fetches now, or joins the fetch already in flight, and reports how it went.
    pub async fn fetch_now(&self) -> Result<(), FetchError> {
        self.inner.flight().await
    }

    /// Starts the background refresh task (one per call; it ends when every clone of
    /// this source is dropped). Needs a Tokio runtime.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.refresh_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let flight = inner.flight();
                drop(inner);
                let _ = flight.await;
            }
        })
    }

    /// The last fetch error, cleared by the next success.
    pub fn last_error(&self) -> Option<FetchError> {
        self.inner.lock().last_error.clone()
    }

    /// The JWKS URL.
    pub fn uri(&self) -> &Uri {
        &self.inner.uri
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fetch in flight, or a new one.
    fn flight(self: &Arc<Self>) -> Flight {
        let mut state = self.lock();
        if let Some(f) = &state.in_flight {
            return f.clone();
        }
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = me.fetch_once().await;
            let mut state = me.lock();
            state.in_flight = None;
            match &result {
                Ok(()) => {
                    state.loaded_at = Some(Instant::now());
                    state.last_error = None;
                }
                Err(e) => state.last_error = Some(e.clone()),
            }
            drop(state);
            me.record_age();
            result
        });
        let flight: BoxFuture<'static, Result<(), FetchError>> = Box::pin(async move {
            task.await
                .unwrap_or_else(|e| Err(FetchError(format!("fetch task failed: {e}"))))
        });
        let flight = flight.shared();
        state.in_flight = Some(flight.clone());
        flight
    }

    async fn fetch_once(&self) -> Result<(), FetchError> {
        let result = async {
            let body = self.client.get(&self.uri).await?;
            let set = KeySet::from_jwks(&body).map_err(|e| FetchError(e.to_string()))?;
            if set.is_empty() {
                return Err(FetchError("JWKS has no usable keys".into()));
            }
            Ok(set)
        }
        .await;
        match result {
            Ok(set) => {
                let changed = !self.keys.load().same_document(&set);
                if changed {
                    tracing::info!(uri = %self.uri, keys = set.len(), "gw-auth: JWKS key set updated");
                    self.keys.store(Arc::new(set));
                }
                metrics::counter!("gw_auth_jwks_fetch_total", "result" => if changed { "updated" } else { "unchanged" }).increment(1);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "gw-auth: JWKS fetch failed; keeping the last good key set");
                metrics::counter!("gw_auth_jwks_fetch_total", "result" => "error").increment(1);
                Err(e)
            }
        }
    }

    fn age(&self) -> Option<Duration> {
        self.lock().loaded_at.map(|t| t.elapsed())
    }

    fn record_age(&self) {
        let age = self
            .age()
            .unwrap_or_else(|| self.started.elapsed())
            .as_secs_f64();
        metrics::gauge!("gw_auth_jwks_age_seconds").set(age);
    }
}

impl KeySource for JwksSource {
    fn keys(&self) -> Arc<KeySet> {
        self.inner.keys.load_full()
    }

    fn generation(&self) -> u64 {
        self.inner.keys.load().generation()
    }

    fn refetch(&self) -> Option<BoxFuture<'static, ()>> {
        let mut state = self.inner.lock();
        if let Some(f) = &state.in_flight {
            return Some(f.clone().map(|_| ()).boxed());
        }
        let now = Instant::now();
        if state
            .last_kid_refetch
            .is_some_and(|t| now.duration_since(t) < self.inner.refetch_interval)
        {
            return None;
        }
        state.last_kid_refetch = Some(now);
        drop(state);
        metrics::counter!("gw_auth_jwks_refetch_total").increment(1);
        Some(self.inner.flight().map(|_| ()).boxed())
    }

    fn age(&self) -> Option<Duration> {
        self.inner.age()
    }
}
