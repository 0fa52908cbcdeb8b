//! Key rings from a directory of `<service-id>.env` files, reloaded when they change.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::{BoxFuture, ready};
use gw_core::BackendError;

use crate::keyfile::parse_key_file;
use crate::keys::{KeyRing, KeyStore};
use crate::wire::valid_id;

/// Default interval between directory scans.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Key rings read from `<dir>/<service-id>.env` files (see [`crate::keyfile`]).
///
/// The directory is rescanned at most once per poll interval, by the lookup that finds the
/// last scan too old: files whose modification time or size changed are re-read, new files
/// are added and deleted files dropped. A file that fails to parse keeps its previous ring
/// (logged), so a half-written file during rotation does not lock a service out. The scan is
/// plain synchronous file I/O (one `stat` per file, a read per changed file) on the
/// request that triggers it; keep the directory small and local.
#[derive(Debug)]
pub struct DirKeyStore {
    dir: PathBuf,
    poll: Duration,
    rings: RwLock<HashMap<Arc<str>, Entry>>,
    last_scan: Mutex<Instant>,
    scanning: AtomicBool,
}

#[derive(Debug, Clone)]
struct Entry {
    stamp: (SystemTime, u64),
    ring: Arc<KeyRing>,
}

impl DirKeyStore {
    /// Reads every key file in `dir`; fails if the directory cannot be read.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let store = Self {
            dir: dir.into(),
            poll: DEFAULT_POLL_INTERVAL,
            rings: RwLock::default(),
            last_scan: Mutex::new(Instant::now()),
            scanning: AtomicBool::new(false),
        };
        store.reload()?;
        Ok(store)
    }

    /// Sets the interval between scans (`Duration::ZERO` scans on every lookup).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rescans the directory now; returns the number of services loaded.
    pub fn reload(&self) -> io::Result<usize> {
        let current = self
            .rings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut next = HashMap::with_capacity(current.len());
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(service_id) = service_id_of(&path) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            let old = current.get(service_id);
            if let Some(old) = old.filter(|e| e.stamp == stamp) {
                next.insert(old.ring.service_id().clone(), old.clone());
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| parse_key_file(service_id, &text).map_err(|e| e.to_string()));
            match parsed {
                Ok(ring) => {
                    tracing::info!(
                        service = service_id,
                        keys = ring.keys().len(),
                        "svc-hmac: key file loaded"
                    );
                    ring.report_expiry(now);
                    let ring = Arc::new(ring);
                    next.insert(ring.service_id().clone(), Entry { stamp, ring });
                }
                Err(error) => {
                    tracing::error!(service = service_id, %error, "svc-hmac: key file not usable, keeping previous keys");
                    if let Some(old) = old {
                        next.insert(old.ring.service_id().clone(), old.clone());
                    }
                }
            }
        }
        let n = next.len();
        *self.rings.write().unwrap_or_else(PoisonError::into_inner) = next;
        *self
            .last_scan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Ok(n)
    }

    fn maybe_reload(&self) {
        let due = self
            .last_scan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            >= self.poll;
        if !due {
            return;
        }
        let Some(_scanning) = Scanning::begin(&self.scanning) else {
            return;
        };
        if let Err(error) = self.reload() {
            tracing::error!(dir = %self.dir.display(), %error, "svc-hmac: key directory scan failed");
            *self
                .last_scan
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
    }
}

/// The one scan in progress; clears the flag when dropped, also if the scan panics, so a
/// failed scan never stops later ones.
struct Scanning<'a>(&'a AtomicBool);

impl<'a> Scanning<'a> {
    fn begin(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Self(flag))
    }
}

impl Drop for Scanning<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn service_id_of(path: &Path) -> Option<&str> {
    if path.extension()? != "env" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    valid_id(stem).then_some(stem)
}

impl KeyStore for DirKeyStore {
    fn ring<'a>(
        &'a self,
        service_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>> {
        self.maybe_reload();
        let rings = self.rings.read().unwrap_or_else(PoisonError::into_inner);
        Box::pin(ready(Ok(rings.get(service_id).map(|e| e.ring.clone()))))
    }

    fn ring_now(&self, service_id: &str) -> Option<Result<Option<Arc<KeyRing>>, BackendError>> {
        self.maybe_reload();
        let rings = self.rings.read().unwrap_or_else(PoisonError::into_inner);
        Some(Ok(rings.get(service_id).map(|e| e.ring.clone())))
    }

    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>> {
        self.maybe_reload();
        let rings = self.rings.read().unwrap_or_else(PoisonError::into_inner);
        Box::pin(ready(Ok(rings.values().map(|e| e.ring.clone()).collect())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyState;
    use futures_util::FutureExt;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("svc-hmac-dir-{}", crate::wire::new_nonce()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn ring(store: &DirKeyStore, id: &str) -> Option<Arc<KeyRing>> {
        store.ring(id).now_or_never().unwrap().unwrap()
    }

    #[test]
    fn loads_reloads_and_drops_files() {
        let dir = temp_dir();
        std::fs::write(dir.join("npu-worker.env"), "SERVICE_KEY=one\n").unwrap();
        std::fs::write(dir.join("README.txt"), "not a key").unwrap();
        std::fs::write(dir.join(".hidden.env"), "SERVICE_KEY=x").unwrap();
        let store = DirKeyStore::open(&dir)
            .unwrap()
            .poll_interval(Duration::ZERO);
        let r = ring(&store, "npu-worker").unwrap();
        assert_eq!(r.find("primary").unwrap().secret().expose(), b"one");
        assert!(ring(&store, ".hidden").is_none());

        // Rotation: new key plus the old one as verify-only.
        std::fs::write(
            dir.join("npu-worker.env"),
            "SERVICE_KEY=two\nSERVICE_KEY_ID=k2\nSERVICE_KEY_PREVIOUS=one\nSERVICE_KEY_PREVIOUS_ID=primary\n",
        )
        .unwrap();
        std::fs::write(dir.join("ai-stack.env"), "SERVICE_KEY=three\n").unwrap();
        let r = ring(&store, "npu-worker").unwrap();
        assert_eq!(r.find("k2").unwrap().secret().expose(), b"two");
        assert_eq!(
            r.find("primary").unwrap().current_state(),
            KeyState::VerifyOnly
        );
        assert!(ring(&store, "ai-stack").is_some());

        // A broken file keeps the previous ring; a removed file drops it.
        std::fs::write(dir.join("npu-worker.env"), "SERVICE_KEY_ID=k3\n").unwrap();
        assert!(ring(&store, "npu-worker").unwrap().find("k2").is_some());
        std::fs::remove_file(dir.join("ai-stack.env")).unwrap();
        assert!(ring(&store, "ai-stack").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_of_range_expiry_is_refused_and_later_scans_still_run() {
        let dir = temp_dir();
        let file = dir.join("npu-worker.env");
        std::fs::write(&file, "SERVICE_KEY=one\n").unwrap();
        let store = DirKeyStore::open(&dir)
            .unwrap()
            .poll_interval(Duration::ZERO);
        // Past i64::MAX seconds: refused like any broken file, the previous ring stays.
        std::fs::write(
            &file,
            "SERVICE_KEY=two\nSERVICE_KEY_EXPIRES_AT=18446744073709551615\n",
        )
        .unwrap();
        let r = ring(&store, "npu-worker").unwrap();
        assert_eq!(r.find("primary").unwrap().secret().expose(), b"one");
        // The next scans pick up the fixed file and a new service.
        std::fs::write(&file, "SERVICE_KEY=three\nSERVICE_KEY_ID=k3\n").unwrap();
        std::fs::write(dir.join("ai-stack.env"), "SERVICE_KEY=x\n").unwrap();
        assert!(ring(&store, "npu-worker").unwrap().find("k3").is_some());
        assert!(ring(&store, "ai-stack").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_panicking_scan_does_not_stop_later_scans() {
        let flag = AtomicBool::new(false);
        let scan = std::panic::catch_unwind(|| {
            let _scanning = Scanning::begin(&flag).unwrap();
            assert!(Scanning::begin(&flag).is_none(), "one scan at a time");
            panic!("scan failed");
        });
        assert!(scan.is_err());
        assert!(Scanning::begin(&flag).is_some());
    }

    #[test]
    fn polls_only_after_the_interval() {
        let dir = temp_dir();
        let store = DirKeyStore::open(&dir)
            .unwrap()
            .poll_interval(Duration::from_secs(3600));
        std::fs::write(dir.join("svc.env"), "SERVICE_KEY=k").unwrap();
        assert!(ring(&store, "svc").is_none());
        assert_eq!(store.reload().unwrap(), 1);
        assert!(ring(&store, "svc").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(DirKeyStore::open(&dir).is_err());
    }
}
