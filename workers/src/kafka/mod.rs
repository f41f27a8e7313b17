//! Kafka client settings and the connection probe.

mod probe;
mod sample;

pub use probe::probe;
pub use sample::{sample, SampleError};

use icehouse_api::connections::{SaslMechanism, SecurityProtocol};
use rdkafka::ClientConfig;

/// What it takes to connect to a tenant's cluster, secrets in clear: built
/// by the control plane right before use, never stored or logged as such.
#[derive(Clone)]
pub struct KafkaSettings {
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
            .finish()
    }
}

impl KafkaSettings {
    /// librdkafka settings common to every client of this cluster.
    pub fn client_config(&self) -> ClientConfig {
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
        let mut config = settings.client_config();
        config.set("socket.connection.setup.timeout.ms", timeout.as_millis().max(1000).to_string());
        let consumer: BaseConsumer = config.create()?;
        let deadline = std::time::Instant::now() + timeout;
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
