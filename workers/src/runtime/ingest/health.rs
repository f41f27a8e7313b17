//! Whether a slice's Kafka side is failing, from what librdkafka tells:
//! consumer errors and the reports of its error callback. Kept apart from
//! the consumer so the rules can be tested with a clock of the test's own.
//!
//! librdkafka retries by itself and never says "the broker is back": it
//! keeps reporting a broker that is down or frozen (on every reconnect, or
//! when a request times out), and reports nothing once it works again. So a
//! failing slice counts as recovered when a message arrives, or when no
//! report has come for [`QUIET_FOR_RECOVERY`], even on an idle topic.

use std::time::Duration;

use tokio::time::Instant;

/// This long without a report from librdkafka means the broker is back.
pub const QUIET_FOR_RECOVERY: Duration = Duration::from_secs(15);

/// What the slice's recorded state should become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Record the slice as failing, with this reason as the pipeline's last error.
    Failing(String),
    /// Record it as running again.
    Recovered,
}

#[derive(Debug)]
pub struct KafkaHealth {
    failing: bool,
    last_report_at: Instant,
}

impl KafkaHealth {
    pub fn new(now: Instant) -> Self {
        Self { failing: false, last_report_at: now }
    }

    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// A message arrived: whatever was wrong works again.
    pub fn on_message(&mut self) -> Option<Change> {
        std::mem::take(&mut self.failing).then_some(Change::Recovered)
    }

    /// The consumer returned an error (`reason`: the callback's report if
    /// there was one, else the error itself).
    pub fn on_error(&mut self, reason: String, now: Instant) -> Option<Change> {
        self.last_report_at = now;
        (!std::mem::replace(&mut self.failing, true)).then(|| Change::Failing(format!("Kafka: {reason}")))
    }

    /// A periodic look at the error callback's latest report (taken, so
    /// each report is seen once). A dead broker shows up only there.
    pub fn on_tick(&mut self, reported: Option<String>, now: Instant) -> Option<Change> {
        match reported {
            Some(reason) => self.on_error(reason, now),
            None if self.failing && now.duration_since(self.last_report_at) > QUIET_FOR_RECOVERY => {
                self.failing = false;
                Some(Change::Recovered)
            }
            None => None,
        }
    }
}

// As in `batching`, the tests move their own clock (no tokio test-util).
#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_first_report_fails_the_slice_once_and_names_the_reason() {
        let t0 = Instant::now();
        let mut h = KafkaHealth::new(t0);
        assert_eq!(h.on_tick(None, t0), None);
        assert_eq!(
            h.on_tick(Some("Connection refused".into()), t0 + secs(1)),
            Some(Change::Failing("Kafka: Connection refused".into()))
        );
        assert!(h.is_failing());
        assert_eq!(h.on_error("timed out".into(), t0 + secs(2)), None, "already failing: not recorded again");
    }

    #[test]
    fn a_message_recovers_at_once() {
        let t0 = Instant::now();
        let mut h = KafkaHealth::new(t0);
        h.on_error("Broker transport failure".into(), t0);
        assert_eq!(h.on_message(), Some(Change::Recovered));
        assert_eq!(h.on_message(), None, "recovery is recorded once");
        assert!(!h.is_failing());
    }

    #[test]
    fn an_idle_topic_recovers_after_a_quiet_spell_that_reports_restart() {
        let t0 = Instant::now();
        let mut h = KafkaHealth::new(t0);
        h.on_tick(Some("Connection refused".into()), t0);
        assert_eq!(h.on_tick(Some("Connection refused".into()), t0 + secs(10)), None, "still down");
        assert_eq!(h.on_tick(None, t0 + secs(24)), None, "14 s since the last report is not quiet enough");
        assert_eq!(h.on_tick(None, t0 + secs(26)), Some(Change::Recovered));
        assert_eq!(h.on_tick(None, t0 + secs(27)), None);
    }

    #[test]
    fn a_healthy_slice_stays_quiet() {
        let t0 = Instant::now();
        let mut h = KafkaHealth::new(t0);
        assert_eq!(h.on_message(), None);
        assert_eq!(h.on_tick(None, t0 + secs(60)), None);
    }
}
