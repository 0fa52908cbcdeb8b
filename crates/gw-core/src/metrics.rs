//! Counters for the per-request path: [`HotCounter`] and the [`hot_counter!`](crate::hot_counter) macro.
//!
//! `metrics::counter!` asks the recorder for the counter's handle at every call. With a
//! real recorder (the gateway installs Prometheus's) that is a registry lookup: a hash,
//! a shared read lock and a reference count taken and released, each an atomic write to
//! memory every core touches, about 450 instructions a call. A request that passes the
//! benchmark's chain counts three outcomes: 1 300 instructions, 4 % of the chain
//! (docs/benchmarks.md).
//!
//! A [`HotCounter`] asks once per thread and recorder, keeps the handle in a small
//! per-thread list, and afterwards only increments it. It follows the recorder
//! `metrics::with_recorder` returns at each call, so a recorder installed later, or a
//! test's local recorder, gets its counts too.
//!
//! The layers use it for the outcome counters of a request that passes (constant names
//! and labels); counters of rare outcomes, or with labels known only at run time, go
//! through `metrics::counter!`.
//!
//! ```
//! use metrics_util::debugging::DebuggingRecorder;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshot = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     for _ in 0..3 {
//!         gw_core::hot_counter!("demo_requests_total", "outcome" => "ok").increment(1);
//!     }
//! });
//! let counts = snapshot.snapshot().into_vec();
//! assert_eq!(counts.len(), 1);
//! let (key, _, _, value) = &counts[0];
//! assert_eq!(key.key().name(), "demo_requests_total");
//! assert_eq!(format!("{value:?}"), "Counter(3)");
//! ```

use std::cell::RefCell;

pub use metrics::Label;
use metrics::{Counter, Key, Level, Metadata, Recorder};

/// A counter with a constant name and labels whose handle is kept per thread and
/// recorder; made by [`hot_counter!`](crate::hot_counter).
///
/// A handle is matched to its recorder by the recorder's address. A recorder that
/// replaces another at the same address, on the same thread, would be given the handles
/// of the one before; recorders installed globally never are, and each test under
/// `cargo test` runs on a thread of its own.
#[derive(Debug)]
pub struct HotCounter {
    key: Key,
    metadata: Metadata<'static>,
}

struct Handle {
    counter: usize,
    recorder: usize,
    handle: Counter,
}

thread_local! {
    static HANDLES: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
}

impl HotCounter {
    /// The counter `name` with `labels`, described as coming from `module_path`.
    pub const fn new(
        name: &'static str,
        labels: &'static [Label],
        module_path: &'static str,
    ) -> Self {
        Self {
            key: Key::from_static_parts(name, labels),
            metadata: Metadata::new(module_path, Level::INFO, Some(module_path)),
        }
    }

    /// Adds `n` on the current recorder.
    pub fn increment(&'static self, n: u64) {
        metrics::with_recorder(|recorder| self.increment_on(recorder, n));
    }

    fn increment_on(&'static self, recorder: &dyn Recorder, n: u64) {
        let me = std::ptr::from_ref(self) as usize;
        let rec = std::ptr::from_ref(recorder).cast::<()>() as usize;
        let cached = HANDLES.try_with(|handles| {
            // Borrowed only here, and a recorder does not count through this type while
            // registering; should one, it gets an uncached handle (below).
            let Ok(mut handles) = handles.try_borrow_mut() else {
                return false;
            };
            match handles
                .iter()
                .find(|h| h.counter == me && h.recorder == rec)
            {
                Some(h) => h.handle.increment(n),
                None => {
                    let handle = recorder.register_counter(&self.key, &self.metadata);
                    handle.increment(n);
                    handles.push(Handle {
                        counter: me,
                        recorder: rec,
                        handle,
                    });
                }
            }
            true
        });
        // Also while the thread's list is being torn down (a count from a destructor at
        // thread exit): counted all the same, through a handle asked for this once.
        if !matches!(cached, Ok(true)) {
            recorder
                .register_counter(&self.key, &self.metadata)
                .increment(n);
        }
    }
}

/// A [`HotCounter`] with a constant name and constant labels, as
/// `metrics::counter!(name, "key" => "value", ...)` takes them:
/// `gw_core::hot_counter!("gw_auth_cache_total", "result" => "hit").increment(1)`.
#[macro_export]
macro_rules! hot_counter {
    ($name:expr $(, $key:literal => $value:literal)* $(,)?) => {{
        static LABELS: &[$crate::metrics::Label] =
            &[$($crate::metrics::Label::from_static_parts($key, $value)),*];
        static COUNTER: $crate::metrics::HotCounter =
            $crate::metrics::HotCounter::new($name, LABELS, ::core::module_path!());
        &COUNTER
    }};
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    /// A debugging recorder that also counts how often a handle was asked for.
    struct Registrations {
        inner: DebuggingRecorder,
        asked: AtomicUsize,
    }

    impl Registrations {
        fn new() -> (Self, Snapshotter) {
            let inner = DebuggingRecorder::new();
            let snapshotter = inner.snapshotter();
            let asked = AtomicUsize::new(0);
            (Self { inner, asked }, snapshotter)
        }
    }

    impl Recorder for Registrations {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.register_counter(key, metadata)
        }
        fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
            self.inner.register_gauge(key, metadata)
        }
        fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
            self.inner.register_histogram(key, metadata)
        }
    }

    /// Name, labels and value of every counter, sorted.
    fn counts(snapshotter: &Snapshotter) -> Vec<(String, Vec<String>, u64)> {
        let mut all: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("not a counter")
                };
                (key.name().to_owned(), labels, n)
            })
            .collect();
        all.sort();
        all
    }

    fn hit() {
        crate::hot_counter!("t_cache_total", "result" => "hit").increment(1);
    }

    #[test]
    fn a_handle_is_asked_for_once_per_counter_and_recorder() {
        let (first, first_counts) = Registrations::new();
        metrics::with_local_recorder(&first, || {
            hit();
            hit();
            crate::hot_counter!("t_cache_total", "result" => "miss").increment(5);
            crate::hot_counter!("t_plain_total").increment(1);
            hit();
        });
        assert_eq!(
            counts(&first_counts),
            vec![
                ("t_cache_total".into(), vec!["result=hit".into()], 3),
                ("t_cache_total".into(), vec!["result=miss".into()], 5),
                ("t_plain_total".into(), vec![], 1),
            ]
        );
        assert_eq!(first.asked.load(Ordering::SeqCst), 3);

        // Another recorder (alive at the same time, so at another address) is asked for
        // its own handle and gets only its own counts.
        let (second, second_counts) = Registrations::new();
        metrics::with_local_recorder(&second, hit);
        assert_eq!(
            counts(&second_counts),
            vec![("t_cache_total".into(), vec!["result=hit".into()], 1)]
        );
        assert_eq!(second.asked.load(Ordering::SeqCst), 1);

        // Back on the first: the kept handle counts on, nothing is asked again.
        metrics::with_local_recorder(&first, hit);
        assert_eq!(
            counts(&first_counts)[0].2,
            1,
            "one more since the last snapshot"
        );
        assert_eq!(first.asked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn without_a_recorder_counting_is_a_no_op() {
        hit();
        hit();
    }

    #[test]
    fn counting_from_a_destructor_at_thread_exit_does_not_panic() {
        struct CountsOnDrop;
        impl Drop for CountsOnDrop {
            fn drop(&mut self) {
                hit();
            }
        }
        thread_local! {
            static GUARD: CountsOnDrop = const { CountsOnDrop };
        }
        // The guard is set up before the handle list, so it is torn down after it:
        // its count finds the list gone.
        let thread = std::thread::spawn(|| {
            GUARD.with(|_| {});
            hit();
        });
        assert!(thread.join().is_ok());
    }
}
