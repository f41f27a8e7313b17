//! Reading the newest messages of a topic, for the mapping wizard.
//!
//! The sample is spread evenly over the partitions (the newest `limit /
//! partitions` of each, rounded up) so a skewed key does not hide the shape of
//! the other partitions, and it never waits for new messages: it reads up to
//! the end of each partition (partition EOF), or until the deadline.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSettings;
use crate::egress::EgressError;
use crate::mapping::KafkaMessage;

/// Bytes one fetch of a sample may ask for, over all partitions.
const FETCH_MAX_BYTES: usize = 8 << 20;
/// …and per partition.
const PARTITION_FETCH_MAX_BYTES: usize = 1 << 20;
/// The largest response accepted from the broker (librdkafka wants room
/// above the fetch size for the protocol's framing).
const RECEIVE_MAX_BYTES: usize = FETCH_MAX_BYTES + (1 << 20);

/// What a sample keeps in memory at most, over all its messages: past it,
/// reading stops with what it has (a hostile broker's 10,000 partitions of
/// 1 MiB messages would otherwise be held at once).
const KEPT_MAX_BYTES: usize = 16 << 20;

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("topic `{0}` does not exist on the cluster")]
    NoSuchTopic(String),
    #[error("{0}")]
    Kafka(String),
    /// A broker this server's egress policy refuses.
    #[error("{0}")]
    Forbidden(String),
}

/// Up to `limit` of the newest messages of `topic`, oldest first within a
/// partition, partitions in order.
pub async fn sample(
    settings: KafkaSettings,
    topic: String,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<KafkaMessage>, SampleError> {
    tokio::task::spawn_blocking(move || sample_blocking(&settings, &topic, limit, timeout))
        .await
        .map_err(|e| SampleError::Kafka(format!("the sampler did not finish: {e}")))?
}

fn sample_blocking(
    settings: &KafkaSettings,
    topic: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<KafkaMessage>, SampleError> {
    let kafka = |e: anyhow::Error| SampleError::Kafka(format!("{e:#}"));
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let refused = |e: EgressError| match e {
        EgressError::Forbidden(f) => SampleError::Forbidden(f.to_string()),
        other => SampleError::Kafka(other.to_string()),
    };
    let mut config = settings.checked_config().map_err(refused)?;
    config
        .set("group.id", "icehouse-sampler")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("socket.connection.setup.timeout.ms", timeout.as_millis().max(1000).to_string())
        // A tenant's broker decides what it sends: bound what one sample
        // reads and queues. A single message bigger than the fetch sizes
        // still comes (the protocol allows it), up to the receive cap; a
        // bigger one fails the sample instead of filling memory.
        .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
        .set("max.partition.fetch.bytes", PARTITION_FETCH_MAX_BYTES.to_string())
        .set("receive.message.max.bytes", RECEIVE_MAX_BYTES.to_string())
        .set("queued.max.messages.kbytes", (FETCH_MAX_BYTES / 1024).to_string());
    let consumer: BaseConsumer = config.create().context("creating the Kafka consumer").map_err(kafka)?;
    let md = consumer.fetch_metadata(Some(topic), left()).context("fetching topic metadata").map_err(kafka)?;
    settings.check_brokers(&md).map_err(refused)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(SampleError::NoSuchTopic(topic.into()));
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(SampleError::NoSuchTopic(topic.into()));
    }
    let ids = t.partitions().iter().map(|p| p.id()).collect();
    let partitions = super::checked_partitions(topic, ids, super::MAX_TOPIC_PARTITIONS).map_err(|e| kafka(e.into()))?;
    let per_partition = limit.div_ceil(partitions.len()).max(1) as i64;

    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, left()).context("fetching watermarks").map_err(kafka)?;
        // Some brokers (tansu's memory engine) under-report the high
        // watermark; the read below ends at the end of the log as the fetch
        // responses say, so a low watermark only makes it read more.
        let start = (high - per_partition).max(low);
        tpl.add_partition_offset(topic, p, Offset::Offset(start)).map_err(|e| kafka(e.into()))?;
    }
    consumer.assign(&tpl).context("assigning partitions").map_err(kafka)?;
    let mut at_end: std::collections::HashSet<i32> = std::collections::HashSet::new();
    // The newest `per_partition` of each partition, however far the read went.
    let mut kept: std::collections::HashMap<i32, std::collections::VecDeque<KafkaMessage>> = Default::default();
    let mut kept_bytes = 0usize;
    while at_end.len() < partitions.len() && !left().is_zero() {
        let Some(polled) = consumer.poll(left().min(Duration::from_millis(200))) else { continue };
        let msg = match polled {
            Ok(msg) => msg,
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                at_end.insert(p);
                continue;
            }
            Err(e) => return Err(kafka(anyhow::Error::from(e).context("reading messages"))),
        };
        let size = msg.payload().map_or(0, <[u8]>::len) + msg.key().map_or(0, <[u8]>::len);
        if kept_bytes + size > KEPT_MAX_BYTES {
            break;
        }
        kept_bytes += size;
        let queue = kept.entry(msg.partition()).or_default();
        queue.push_back(KafkaMessage {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default(),
        });
        if queue.len() as i64 > per_partition {
            if let Some(old) = queue.pop_front() {
                kept_bytes -= old.value.as_ref().map_or(0, Vec::len) + old.key.as_ref().map_or(0, Vec::len);
            }
        }
    }
    let mut out: Vec<KafkaMessage> = kept.into_values().flatten().collect();
    out.sort_by_key(|m| (m.partition, m.offset));
    out.dedup_by_key(|m| (m.partition, m.offset));
    // The evenly spread quota may overshoot `limit`: keep the newest overall.
    if out.len() > limit {
        out.sort_by_key(|m| std::cmp::Reverse((m.timestamp_ms, m.offset)));
        out.truncate(limit);
        out.sort_by_key(|m| (m.partition, m.offset));
    }
    Ok(out)
}
