//! Where each partition's next message should be, and what a delivery that
//! is not that message means.
//!
//! Offsets in a partition only grow, and the slice itself only ever seeks
//! to the next offset it expects, so a message below that offset is one the
//! slice already holds (buffered or committed): the broker or the client
//! went back (an offset reset, a broker's wrong answer) and the message is
//! dropped, never written twice. A message above it skips offsets: one is a
//! transaction marker; more is compaction or, on a broker that misbehaves,
//! messages the slice never sees, which is logged.
//!
//! Each batch also records, per partition, the offset it started from (the
//! stored next offset when the batch began), which the commit checks against
//! Postgres: commits of a partition chain exactly, whatever the broker did.

use std::collections::{BTreeMap, BTreeSet};

use crate::coord::offsets::OffsetMove;

/// What a delivered offset is, next to the one expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The expected offset, or one past it (a transaction marker).
    Next,
    /// Offsets `expected..got` were skipped.
    Gap { expected: i64 },
    /// Already held: drop it. `first` is the first of a run of them (worth a log line).
    Repeat { expected: i64, first: bool },
}

#[derive(Debug, Default)]
pub struct Positions {
    next: BTreeMap<i32, i64>,
    /// Partitions now delivering repeats (logged once per run of them).
    repeating: BTreeSet<i32>,
    /// The current batch's moves, per partition it has a message of.
    batch: BTreeMap<i32, OffsetMove>,
}

impl Positions {
    /// Starting at the offsets the slice was assigned at.
    pub fn new(starts: BTreeMap<i32, i64>) -> Positions {
        Positions { next: starts, ..Positions::default() }
    }

    /// Records a delivered message; a [`Delivery::Repeat`] changes nothing
    /// and its message must be dropped.
    pub fn deliver(&mut self, partition: i32, offset: i64) -> Delivery {
        let expected = self.next.get(&partition).copied();
        let delivery = match expected {
            Some(e) if offset < e => {
                return Delivery::Repeat { expected: e, first: self.repeating.insert(partition) };
            }
            Some(e) if offset > e + 1 => Delivery::Gap { expected: e },
            _ => Delivery::Next,
        };
        self.repeating.remove(&partition);
        let from = expected.unwrap_or(offset);
        self.batch.entry(partition).or_insert(OffsetMove { from, next: offset + 1 }).next = offset + 1;
        self.next.insert(partition, offset + 1);
        delivery
    }

    /// The current batch's moves, leaving an empty batch.
    pub fn take_batch(&mut self) -> BTreeMap<i32, OffsetMove> {
        std::mem::take(&mut self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Positions {
        Positions::new(BTreeMap::from([(0, 10), (1, 0)]))
    }

    #[test]
    fn consecutive_offsets_move_the_batch_from_the_start() {
        let mut p = started();
        for o in 10..15 {
            assert_eq!(p.deliver(0, o), Delivery::Next);
        }
        assert_eq!(p.deliver(1, 0), Delivery::Next);
        assert_eq!(
            p.take_batch(),
            BTreeMap::from([(0, OffsetMove { from: 10, next: 15 }), (1, OffsetMove { from: 0, next: 1 })])
        );
        assert_eq!(p.deliver(0, 15), Delivery::Next);
        assert_eq!(p.take_batch(), BTreeMap::from([(0, OffsetMove { from: 15, next: 16 })]));
    }

    #[test]
    fn a_message_already_held_is_a_repeat_and_changes_nothing() {
        let mut p = started();
        for o in 10..20 {
            p.deliver(0, o);
        }
        assert_eq!(p.deliver(0, 12), Delivery::Repeat { expected: 20, first: true });
        assert_eq!(p.deliver(0, 19), Delivery::Repeat { expected: 20, first: false }, "one log line per run");
        assert_eq!(p.deliver(0, 20), Delivery::Next);
        assert_eq!(p.deliver(0, 5), Delivery::Repeat { expected: 21, first: true });
        assert_eq!(p.take_batch(), BTreeMap::from([(0, OffsetMove { from: 10, next: 21 })]));
        // Below the assigned start, before anything was delivered.
        assert_eq!(p.deliver(1, 0), Delivery::Next);
        assert_eq!(started().deliver(0, 3), Delivery::Repeat { expected: 10, first: true });
    }

    #[test]
    fn a_marker_is_next_and_more_is_a_gap() {
        let mut p = started();
        assert_eq!(p.deliver(0, 11), Delivery::Next);
        assert_eq!(p.deliver(0, 15), Delivery::Gap { expected: 12 });
        assert_eq!(p.take_batch(), BTreeMap::from([(0, OffsetMove { from: 10, next: 16 })]));
    }
}
