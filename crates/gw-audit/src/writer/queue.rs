//! The in-memory queue: records in arrival order, and the bytes they hold.

use std::collections::VecDeque;

use crate::pending::Raw;
use crate::record::AuditRecord;

/// A queued record: as the layer left it (converted by the worker), or ready-made.
pub(crate) enum Item {
    Raw(Box<Raw>),
    Record(Box<AuditRecord>),
}

impl Item {
    pub(crate) fn into_record(self) -> AuditRecord {
        match self {
            Self::Raw(raw) => raw.into_record(),
            Self::Record(record) => *record,
        }
    }

    /// Estimated bytes the item holds (see `crate::size`).
    pub(crate) fn estimated_bytes(&self) -> usize {
        match self {
            Self::Raw(raw) => raw.estimated_bytes(),
            Self::Record(record) => record.estimated_bytes(),
        }
    }
}

/// Queued items with their estimated sizes, and the sum of those.
#[derive(Default)]
pub(crate) struct Queue {
    items: VecDeque<(Item, usize)>,
    bytes: usize,
}

impl Queue {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(n),
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Estimated bytes of all queued items.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn push_back(&mut self, item: Item, bytes: usize) {
        self.bytes += bytes;
        self.items.push_back((item, bytes));
    }

    pub(crate) fn pop_front(&mut self) -> Option<Item> {
        let (item, bytes) = self.items.pop_front()?;
        self.bytes -= bytes;
        Some(item)
    }

    /// Moves the first `n` items (at most) to `out`.
    pub(crate) fn take(&mut self, n: usize, out: &mut Vec<Item>) {
        let n = n.min(self.items.len());
        out.extend(self.items.drain(..n).map(|(item, bytes)| {
            self.bytes -= bytes;
            item
        }));
    }
}
