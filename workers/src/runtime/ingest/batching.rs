//! When to commit: the batching policy of a running slice, kept apart from
//! Kafka and Postgres so its rules can be tested with a clock of the test's own.
//!
//! A batch is committed
//! - at once when it is full (`batch_max_messages` or `batch_max_bytes`);
//! - at its deadline, one flush interval after the previous flush, so a
//!   slow topic costs one commit per interval, not one per message;
//! - early, once a big batch (a tenth of the limits or more) has seen
//!   nothing new for [`DRAINED_AFTER`]: a backlog was drained and waiting
//!   for the deadline would only add latency.

use std::time::Duration;

use tokio::time::Instant;

/// Nothing new for this long means the consumer has caught up with the topic:
/// twice the consumer's `fetch.wait.max.ms`, so a broker that holds every
/// fetch for that wait (tansu does) does not look drained mid-backlog.
pub const DRAINED_AFTER: Duration = Duration::from_millis(200);

/// The size bounds of one batch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_messages: usize,
    /// Bytes of message keys, values and headers.
    pub max_bytes: usize,
}

#[derive(Debug)]
pub struct BatchPolicy {
    limits: Limits,
    interval: Duration,
    messages: usize,
    bytes: usize,
    deadline: Instant,
    last_message_at: Instant,
}

impl BatchPolicy {
    pub fn new(limits: Limits, interval: Duration, now: Instant) -> Self {
        Self { limits, interval, messages: 0, bytes: 0, deadline: now + interval, last_message_at: now }
    }

    /// Counts a message into the batch; `true` when the batch is now full.
    pub fn add(&mut self, bytes: usize, now: Instant) -> bool {
        self.messages += 1;
        self.bytes += bytes;
        self.last_message_at = now;
        self.is_full()
    }

    pub fn is_full(&self) -> bool {
        self.messages >= self.limits.max_messages || self.bytes >= self.limits.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// When the batch is due without growing further: its deadline, or
    /// earlier once a big batch has drained the backlog.
    pub fn due_at(&self) -> Instant {
        let big = self.messages >= self.limits.max_messages / 10 || self.bytes >= self.limits.max_bytes / 10;
        if big && !self.is_empty() {
            self.deadline.min(self.last_message_at + DRAINED_AFTER)
        } else {
            self.deadline
        }
    }

    /// The batch was taken (committed, or empty at its deadline): start the
    /// next one, due one interval from now.
    pub fn reset(&mut self, now: Instant) {
        self.messages = 0;
        self.bytes = 0;
        self.deadline = now + self.interval;
    }
}

// The rules take the time as an argument, so the tests move a clock of
// their own instead of sleeping (tokio's paused time would need its
// `test-util` feature, and with it a second build of everything on tokio).
#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_messages: 1000, max_bytes: 1_000_000 };
    const INTERVAL: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_batch_is_due_at_once_by_count_or_by_bytes() {
        let t0 = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        for _ in 0..999 {
            assert!(!p.add(10, t0));
        }
        assert!(p.add(10, t0), "the 1000th message fills it");

        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        assert!(!p.add(999_999, t0));
        assert!(p.add(1, t0), "a million bytes fill it");
    }

    #[test]
    fn a_small_batch_waits_for_its_deadline() {
        let t0 = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        p.add(100, t0);
        p.add(100, t0 + ms(300));
        assert_eq!(p.due_at(), t0 + INTERVAL, "a trickle is committed once per interval, not per message");
    }

    #[test]
    fn a_drained_backlog_is_due_after_a_short_silence() {
        let t0 = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        for _ in 0..99 {
            p.add(10, t0);
        }
        assert_eq!(p.due_at(), t0 + INTERVAL, "below a tenth of the limits: only the deadline");
        p.add(10, t0 + ms(50));
        assert_eq!(p.due_at(), t0 + ms(50) + DRAINED_AFTER, "a tenth drained: due 200 ms after the last message");

        // Still arriving: the due time moves with every message, but never past the deadline.
        p.add(10, t0 + ms(950));
        assert_eq!(p.due_at(), t0 + INTERVAL);
    }

    #[test]
    fn big_values_count_like_many_messages() {
        let t0 = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        p.add(100_000, t0 + ms(10));
        assert_eq!(p.due_at(), t0 + ms(10) + DRAINED_AFTER, "a tenth of the byte budget in one message");
    }

    #[test]
    fn a_reset_starts_a_new_interval_from_then() {
        let t0 = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, t0);
        for _ in 0..500 {
            p.add(10, t0);
        }
        p.reset(t0 + ms(700));
        assert!(p.is_empty());
        assert!(!p.is_full());
        assert_eq!(p.due_at(), t0 + ms(700) + INTERVAL, "an empty batch is only due at its new deadline");
    }
}
