//! When to commit: the batching policy of a running slice, kept apart from
//! Kafka and Postgres so its rules can be tested under paused time.
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_messages: 1000, max_bytes: 1_000_000 };
    const INTERVAL: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_due_at_once_by_count_or_by_bytes() {
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, Instant::now());
        for _ in 0..999 {
            assert!(!p.add(10, Instant::now()));
        }
        assert!(p.add(10, Instant::now()), "the 1000th message fills it");

        let mut p = BatchPolicy::new(LIMITS, INTERVAL, Instant::now());
        assert!(!p.add(999_999, Instant::now()));
        assert!(p.add(1, Instant::now()), "a million bytes fill it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_batch_waits_for_its_deadline() {
        let start = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, start);
        p.add(100, Instant::now());
        tokio::time::advance(Duration::from_millis(300)).await;
        p.add(100, Instant::now());
        assert_eq!(p.due_at(), start + INTERVAL, "a trickle is committed once per interval, not per message");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_backlog_is_due_after_a_short_silence() {
        let start = Instant::now();
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, start);
        for _ in 0..100 {
            p.add(10, Instant::now());
        }
        tokio::time::advance(Duration::from_millis(50)).await;
        p.add(10, Instant::now());
        let last = Instant::now();
        assert_eq!(p.due_at(), last + DRAINED_AFTER, "a tenth of the limit drained: due 200 ms after the last message");

        // Still arriving: the due time moves with every message, but never past the deadline.
        tokio::time::advance(Duration::from_millis(900)).await;
        p.add(10, Instant::now());
        assert_eq!(p.due_at(), start + INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_starts_a_new_interval_from_now() {
        let mut p = BatchPolicy::new(LIMITS, INTERVAL, Instant::now());
        for _ in 0..500 {
            p.add(10, Instant::now());
        }
        tokio::time::advance(Duration::from_millis(700)).await;
        p.reset(Instant::now());
        assert!(p.is_empty());
        assert!(!p.is_full());
        assert_eq!(p.due_at(), Instant::now() + INTERVAL, "an empty batch is only due at its new deadline");
    }
}
