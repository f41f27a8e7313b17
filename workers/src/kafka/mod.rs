//! Kafka client settings and the connection probe.

mod probe;
mod sample;

pub use probe::probe;
pub use sample::{sample, SampleError};

use std::sync::Arc;

use icehouse_api::connections::{SaslMechanism, SecurityProtocol};
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;

use crate::egress::{EgressError, EgressPolicy};

/// The most partitions a topic may have for Icehouse to read it (Kafka's own
/// guidance is thousands per cluster); see [`checked_partitions`].
pub const MAX_TOPIC_PARTITIONS: usize = 10_000;

/// The most characters of a broker's own words (a SASL error message, a
/// reason in an error report) that reach the API, `last_error` and mails.
pub const MAX_BROKER_TEXT: usize = 200;

/// Text a broker controls, made fit to show: control characters, the
/// invisible ones that reorder or hide text (bidirectional overrides,
/// zero-width and tag characters, variation selectors) and runs of whitespace become one space, and past
/// [`MAX_BROKER_TEXT`] characters it is cut with `…`. (A hostile broker can
/// say anything, as long as it likes.)
pub fn broker_text(text: &str) -> String {
    let hidden = |c: char| {
        matches!(c, '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
            | '\u{e0000}'..='\u{e007f}')
    };
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split(|c: char| c.is_whitespace() || c.is_control() || hidden(c)).filter(|w| !w.is_empty()) {
        for c in (!out.is_empty()).then_some(' ').into_iter().chain(word.chars()) {
            if chars == MAX_BROKER_TEXT {
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// A broker's list of a topic's partitions that Icehouse will not act on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PartitionsRefused(pub String);

/// A topic's partition ids as a broker reported them, sorted, if they are
/// what a Kafka topic has: 1 to `max` partitions numbered 0 to n − 1. What a
/// broker says is tenant-controlled, so anything else is refused.
pub fn checked_partitions(topic: &str, mut ids: Vec<i32>, max: usize) -> Result<Vec<i32>, PartitionsRefused> {
    let refuse = |why: String| Err(PartitionsRefused(why));
    if ids.is_empty() {
        return refuse(format!("topic `{topic}` has no partitions"));
    }
    if ids.len() > max {
        return refuse(format!("topic `{topic}` has {} partitions, more than the {max} a pipeline reads", ids.len()));
    }
    ids.sort_unstable();
    if ids.iter().enumerate().any(|(i, &id)| id != i as i32) {
        let last = ids.len() - 1;
        return refuse(format!("the broker reports partitions of topic `{topic}` that are not numbered 0 to {last}"));
    }
    Ok(ids)
}

/// What it takes to connect to a tenant's cluster, secrets in clear: built
/// by the control plane right before use, never stored or logged as such.
#[derive(Clone)]
pub struct KafkaSettings {
    /// Where this server may connect for the tenant.
    pub egress: Arc<EgressPolicy>,
    pub bootstrap_servers: Vec<String>,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl KafkaSettings {
    /// librdkafka settings common to every client of this cluster, once
    /// every bootstrap server has passed the egress policy (a blocking
    /// lookup: call it off the async threads).
    pub fn checked_config(&self) -> Result<ClientConfig, EgressError> {
        for server in &self.bootstrap_servers {
            self.egress.check_server(server)?;
        }
        Ok(self.client_config())
    }

    /// Checks the brokers a cluster advertises in `metadata`: run before
    /// any partition is fetched (which connects to its leader).
    pub fn check_brokers(&self, metadata: &Metadata) -> Result<(), EgressError> {
        for b in metadata.brokers() {
            let port = u16::try_from(b.port()).unwrap_or(0);
            self.egress.check_host(b.host(), port)?;
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap_servers.join(","))
            .set("security.protocol", self.security_protocol.as_str().to_ascii_lowercase())
            .set("client.id", "icehouse");
        if let Some(mechanism) = self.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some(user) = &self.sasl_username {
            config.set("sasl.username", user);
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", password);
        }
        config
    }
}

/// The high watermark of each partition (for lag), within `timeout`.
pub async fn high_watermarks(
    settings: KafkaSettings,
    topic: String,
    partitions: Vec<i32>,
    timeout: std::time::Duration,
) -> anyhow::Result<std::collections::HashMap<i32, i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    if partitions.is_empty() {
        return Ok(Default::default());
    }
    tokio::task::spawn_blocking(move || {
        let mut config = settings.checked_config()?;
        config.set("socket.connection.setup.timeout.ms", timeout.as_millis().max(1000).to_string());
        let consumer: BaseConsumer = config.create()?;
        let deadline = std::time::Instant::now() + timeout;
        settings.check_brokers(&consumer.fetch_metadata(Some(topic.as_str()), timeout)?)?;
        let mut out = std::collections::HashMap::new();
        for p in partitions {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (_, high) = consumer.fetch_watermarks(&topic, p, left)?;
            out.insert(p, high);
        }
        Ok(out)
    })
    .await?
}

#[cfg(test)]
mod tests {
    #[test]
    fn broker_text_is_one_short_line() {
        use super::broker_text;
        assert_eq!(
            broker_text("SASL  authentication\r\nerror:\u{1b}[31m bad\tpassword "),
            "SASL authentication error: [31m bad password"
        );
        let long = broker_text(&format!("<html>{}</html>", "x".repeat(10_000)));
        assert_eq!((long.chars().count(), long.ends_with("x…")), (super::MAX_BROKER_TEXT + 1, true));
        assert_eq!(broker_text(""), "");
        assert_eq!(broker_text("user\u{202e}nimda\u{200b}!"), "user nimda !");
    }

    use super::*;

    #[test]
    fn a_broker_cannot_report_any_partitions_it_likes() {
        assert_eq!(checked_partitions("t", vec![2, 0, 1], 3), Ok(vec![0, 1, 2]));
        assert_eq!(checked_partitions("t", vec![], 3).unwrap_err().0, "topic `t` has no partitions");
        assert_eq!(
            checked_partitions("t", (0..4).collect(), 3).unwrap_err().0,
            "topic `t` has 4 partitions, more than the 3 a pipeline reads"
        );
        for odd in [vec![0, 2], vec![0, 0], vec![1], vec![0, i32::MAX], vec![-1, 0]] {
            assert!(checked_partitions("t", odd.clone(), 10).unwrap_err().0.contains("not numbered 0 to"), "{odd:?}");
        }
    }
}
