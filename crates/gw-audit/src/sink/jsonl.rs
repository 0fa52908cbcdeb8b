//! [`JsonLinesSink`]: one JSON object per line, to stdout or a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use gw_core::BackendError;

use super::{AuditSink, BoxFuture};
use crate::record::AuditRecord;

enum Target {
    Stdout,
    File(File),
}

/// Writes each record as one JSON line, to stdout or appended to a file.
#[derive(Clone)]
pub struct JsonLinesSink {
    target: Arc<Mutex<Target>>,
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

impl JsonLinesSink {
    /// Lines to standard output.
    pub fn stdout() -> Self {
        Self {
            target: Arc::new(Mutex::new(Target::Stdout)),
        }
    }

    /// Lines appended to the file at `path` (created if missing).
    pub fn file(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            target: Arc::new(Mutex::new(Target::File(file))),
        })
    }

    fn write_batch(&self, batch: &[AuditRecord]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for record in batch {
            serde_json::to_writer(&mut buf, record)?;
            buf.push(b'\n');
        }
        let mut target = self.target.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()
            }
            Target::File(file) => {
                file.write_all(&buf)?;
                file.flush()
            }
        }
    }
}

impl AuditSink for JsonLinesSink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        let result = self
            .write_batch(batch)
            .map_err(|e| BackendError::unavailable("audit-jsonl", e));
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_one_line_per_record() {
        let path = std::env::temp_dir().join(format!("gw-audit-{}.jsonl", uuid::Uuid::now_v7()));
        let sink = JsonLinesSink::file(&path).unwrap();
        let batch = [crate::record::sample(1), crate::record::sample(2)];
        sink.write(&batch).await.unwrap();
        sink.write(&batch[..1]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![batch[0].clone(), batch[1].clone(), batch[0].clone()]
        );
        std::fs::remove_file(path).unwrap();
    }
}
