//! The durable on-disk spool: append-only segment files of JSON lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::record::AuditRecord;

const SUFFIX: &str = ".spool";
/// Extension of a segment moved aside because it could not be read.
const QUARANTINE: &str = "unreadable";

struct Current {
    seq: u64,
    file: File,
    size: u64,
    dirty: bool,
}

struct State {
    current: Option<Current>,
    next_seq: u64,
    /// Unreadable segments that could not be moved aside.
    skipped: Vec<u64>,
}

/// Segments `{seq:020}.spool` in one directory. Appends go to the open segment until it
/// reaches the size limit or is sealed for replay; replay reads sealed segments oldest
/// first and deletes each once it is written.
pub(crate) struct Spool {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

impl Spool {
    /// Opens (creating) the spool directory; existing segments are kept for replay.
    pub(crate) fn open(dir: &Path, segment_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let next_seq = list(dir)?.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            state: Mutex::new(State {
                current: None,
                next_seq,
                skipped: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `batch`; with `sync`, the data is on disk when this returns.
    pub(crate) fn append(&self, batch: &[AuditRecord], sync: bool) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for record in batch {
            serde_json::to_writer(&mut buf, record)?;
            buf.push(b'\n');
        }
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_none_or(|c| c.size >= self.segment_bytes)
        {
            let seq = state.next_seq;
            let path = self.dir.join(format!("{seq:020}{SUFFIX}"));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            state.next_seq += 1;
            state.current = Some(Current {
                seq,
                file,
                size: 0,
                dirty: false,
            });
        }
        let current = state.current.as_mut().expect("opened above");
        current.file.write_all(&buf)?;
        current.size += buf.len() as u64;
        if sync {
            current.file.sync_data()?;
            current.dirty = false;
        } else {
            current.dirty = true;
        }
        Ok(())
    }

    /// Forces unsynced appends to disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(c) = state.current.as_mut().filter(|c| c.dirty) {
            c.file.sync_data()?;
            c.dirty = false;
        }
        Ok(())
    }

    /// The oldest segment ready for replay, sealing the open one if it is the only one.
    pub(crate) fn oldest(&self) -> io::Result<Option<PathBuf>> {
        let mut state = self.lock();
        let mut segments = list(&self.dir)?;
        segments.retain(|(seq, _)| !state.skipped.contains(seq));
        let open = state.current.as_ref().map(|c| c.seq);
        if let Some((_, path)) = segments.iter().find(|(seq, _)| Some(*seq) != open) {
            return Ok(Some(path.clone()));
        }
        match (segments.first(), state.current.take()) {
            (Some((_, path)), Some(c)) => {
                c.file.sync_data()?;
                Ok(Some(path.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Moves a segment that cannot be read aside (renamed `*.unreadable`, kept for
    /// inspection), so that it does not hold up the segments after it. If even the
    /// rename fails, the segment is skipped for the rest of this process's life.
    pub(crate) fn quarantine(&self, path: &Path) {
        let aside = path.with_extension(QUARANTINE);
        match fs::rename(path, &aside) {
            Ok(()) => tracing::error!(
                path = %aside.display(),
                "audit spool segment unreadable: moved aside, its records are not replayed"
            ),
            Err(e) => {
                tracing::error!(
                    path = %path.display(),
                    "audit spool segment unreadable and not moved aside ({e}): skipped"
                );
                if let Some(seq) = seq_of(path) {
                    self.lock().skipped.push(seq);
                }
            }
        }
        metrics::counter!("gw_audit_spool_segments_quarantined_total").increment(1);
    }

    /// Number of segment files on disk.
    pub(crate) fn segments(&self) -> usize {
        list(&self.dir).map_or(0, |l| l.len())
    }
}

/// Reads a segment; unreadable lines (a torn last line after a crash, even one cut inside
/// a multi-byte character) are skipped with a warning and returned as a count, so the
/// caller can count them lost. Lines are split as bytes: only an I/O error fails the
/// whole segment.
pub(crate) fn read_segment(path: &Path) -> io::Result<(Vec<AuditRecord>, usize)> {
    let mut records = Vec::new();
    let mut bad = 0;
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<AuditRecord>(&line) {
            Ok(mut r) => {
                // Segments spooled by an earlier version may hold NULs.
                r.scrub_nul();
                records.push(r);
            }
            Err(e) => {
                bad += 1;
                tracing::warn!(path = %path.display(), "skipping unreadable spool line: {e}");
            }
        }
    }
    Ok((records, bad))
}

/// The number of non-empty lines of a segment (each one a record, or a torn one).
pub(crate) fn count_lines(path: &Path) -> io::Result<usize> {
    let mut reader = BufReader::new(File::open(path)?);
    let (mut lines, mut in_line) = (0, false);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(lines + usize::from(in_line));
        }
        for &b in chunk {
            if b == b'\n' {
                lines += usize::from(in_line);
                in_line = false;
            } else {
                in_line = true;
            }
        }
        let n = chunk.len();
        reader.consume(n);
    }
}

fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(SUFFIX))
        .and_then(|n| n.parse::<u64>().ok())
}

fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(seq) = seq_of(&path) {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample;

    #[test]
    fn lines_are_counted_without_empty_ones_and_with_a_torn_last_one() {
        let dir = std::env::temp_dir().join(format!("gw-audit-lines-{}", uuid::Uuid::now_v7()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.spool");
        for (text, n) in [
            ("", 0),
            ("a\n", 1),
            ("a\n\nb\n", 2),
            ("a\nb\nto", 3),
            ("\n\n", 0),
        ] {
            fs::write(&path, text).unwrap();
            assert_eq!(count_lines(&path).unwrap(), n, "{text:?}");
        }
        let long = "x".repeat(20_000) + "\n" + &"y".repeat(9_000);
        fs::write(&path, long).unwrap();
        assert_eq!(count_lines(&path).unwrap(), 2);
        assert!(count_lines(&dir).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn segments_rotate_seal_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("gw-audit-spool-{}", uuid::Uuid::now_v7()));
        let spool = Spool::open(&dir, 1).unwrap();
        spool.append(&[sample(1), sample(2)], true).unwrap();
        spool.append(&[sample(3)], false).unwrap();
        spool.sync().unwrap();
        assert_eq!(spool.segments(), 2);

        // A restart picks up both segments, oldest first, and appends after them.
        drop(spool);
        let spool = Spool::open(&dir, 1 << 20).unwrap();
        spool.append(&[sample(4)], true).unwrap();
        let first = spool.oldest().unwrap().unwrap();
        let ids: Vec<String> = read_segment(&first)
            .unwrap()
            .0
            .into_iter()
            .map(|r| r.correlation_id.to_string())
            .collect();
        assert_eq!(ids, ["corr-1", "corr-2"]);
        fs::remove_file(first).unwrap();
        let second = spool.oldest().unwrap().unwrap();
        assert_eq!(read_segment(&second).unwrap().0.len(), 1);
        fs::remove_file(second).unwrap();
        // Only the open segment is left: it is sealed and handed out.
        let third = spool.oldest().unwrap().unwrap();
        assert_eq!(
            &*read_segment(&third).unwrap().0[0].correlation_id,
            "corr-4"
        );
        fs::remove_file(third).unwrap();
        assert!(spool.oldest().unwrap().is_none());

        // A torn line is skipped and counted.
        spool.append(&[sample(5)], true).unwrap();
        let torn = spool.oldest().unwrap().unwrap();
        let mut f = OpenOptions::new().append(true).open(&torn).unwrap();
        f.write_all(b"{\"id\":\"01").unwrap();
        let (records, bad) = read_segment(&torn).unwrap();
        assert_eq!((records.len(), bad), (1, 1));

        // So is a line cut inside a multi-byte character, and the lines after it count.
        let mut f = OpenOptions::new().append(true).open(&torn).unwrap();
        f.write_all(b"\n{\"endpoint\":\"/caf\xc3\n").unwrap();
        let mut line = serde_json::to_vec(&sample(6)).unwrap();
        line.push(b'\n');
        f.write_all(&line).unwrap();
        let (records, bad) = read_segment(&torn).unwrap();
        assert_eq!((records.len(), bad), (2, 2));
        fs::remove_dir_all(dir).unwrap();
    }
}
