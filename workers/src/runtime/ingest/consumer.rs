//! The slice's Kafka consumer: created for the pipeline, `assign`ed at the
//! next offsets stored in Postgres (never a consumer group's own position),
//! with librdkafka's error reports kept for the health tracker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use icehouse_api::pipelines::StartPosition;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;

use crate::coord::{self, offsets};
use crate::kafka::KafkaSettings;
use crate::mapping::KafkaMessage;
use crate::runtime::spec::PipelineSpec;

/// Errors from librdkafka's callback, shown as the pipeline's last error.
#[derive(Default)]
pub struct ErrorContext {
    last: Mutex<Option<String>>,
}

impl ErrorContext {
    /// The latest report since the last call, if any.
    pub fn take_report(&self) -> Option<String> {
        self.last.lock().unwrap().take()
    }
}

impl ClientContext for ErrorContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "librdkafka");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        // The reason may quote the broker (a SASL error message): kept short.
        let reason = crate::kafka::broker_text(reason);
        *self.last.lock().unwrap() = Some(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for ErrorContext {}

pub type KafkaConsumer = StreamConsumer<ErrorContext>;

/// The slice's consumer, its bootstrap servers checked against the egress
/// policy first (a lookup, off the async threads).
pub async fn connect(spec: &PipelineSpec) -> anyhow::Result<KafkaConsumer> {
    let kafka = spec.kafka.clone();
    let mut config = tokio::task::spawn_blocking(move || kafka.checked_config()).await??;
    config
        .set("group.id", format!("icehouse-{}", spec.id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Where a stored offset is no longer on the broker (retention), resume at the oldest.
        .set("auto.offset.reset", "earliest")
        // Bounded prefetch: memory per pipeline stays bounded while a commit is slow.
        .set("queued.max.messages.kbytes", "65536")
        .set("fetch.wait.max.ms", "100")
        .set("socket.timeout.ms", "10000")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "2000")
        .set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(ErrorContext::default()).context("creating the Kafka consumer")
}

/// The slice's consumer, closed on the blocking pool when the slice ends:
/// librdkafka's close and destroy wait for its threads (and for brokers that
/// may not answer), which must not stall an async worker thread that other
/// slices' tasks run on.
pub struct SliceConsumer(Option<Arc<KafkaConsumer>>);

impl SliceConsumer {
    pub fn new(consumer: KafkaConsumer) -> SliceConsumer {
        SliceConsumer(Some(Arc::new(consumer)))
    }
}

impl std::ops::Deref for SliceConsumer {
    type Target = Arc<KafkaConsumer>;
    fn deref(&self) -> &Arc<KafkaConsumer> {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for SliceConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(consumer))),
            Err(_) => drop(consumer),
        }
    }
}

/// The topic's partition ids, sorted, once every broker the cluster
/// advertises has passed the egress policy (before the first fetch, and at
/// every look after). librdkafka's metadata call blocks, so it runs off the
/// async threads.
pub async fn partitions_of(
    consumer: &Arc<KafkaConsumer>,
    kafka: &KafkaSettings,
    topic: &str,
    max: usize,
) -> anyhow::Result<Vec<i32>> {
    let (consumer, name, kafka) = (consumer.clone(), topic.to_string(), kafka.clone());
    let md = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let md = consumer.fetch_metadata(Some(&name), Duration::from_secs(5))?;
        kafka.check_brokers(&md)?;
        Ok(md)
    })
    .await??;
    let t = md.topics().iter().find(|t| t.name() == topic).context("topic not in metadata")?;
    if let Some(err) = t.error() {
        anyhow::bail!("{err:?}");
    }
    let ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    Ok(crate::kafka::checked_partitions(topic, ids, max)?)
}

/// Assigns the slice's partitions at their stored next offsets; a partition
/// never consumed (the pipeline's first run, or one the topic gained since)
/// starts at the pipeline's start position, resolved once and stored.
/// Returns the offset each partition starts at.
pub async fn assign(
    pool: &PgPool,
    consumer: &Arc<KafkaConsumer>,
    spec: &PipelineSpec,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    // A system transaction: the offsets are behind row-level security.
    let mut tx = coord::begin_system(pool).await?;
    let stored = offsets::stored(&mut tx, spec.id).await?;
    tx.commit().await?;
    let mut tpl = TopicPartitionList::new();
    let mut starts = BTreeMap::new();
    for &p in partitions {
        let offset = match stored.get(&p) {
            Some(&o) => o,
            None => {
                let (low, high) = watermarks(consumer, &spec.topic, p).await?;
                let start = if spec.start_position == StartPosition::Latest { high } else { low };
                let mut tx = coord::begin_system(pool).await?;
                let offset = offsets::resolve_start(&mut tx, spec.id, spec.tenant_id, p, start).await?;
                tx.commit().await?;
                offset
            }
        };
        tpl.add_partition_offset(&spec.topic, p, Offset::Offset(offset))?;
        starts.insert(p, offset);
    }
    consumer.assign(&tpl)?;
    Ok(starts)
}

/// A partition's low and high watermarks; a blocking librdkafka call, run
/// off the async threads and with no Postgres transaction open around it.
async fn watermarks(consumer: &Arc<KafkaConsumer>, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let (consumer, topic) = (consumer.clone(), topic.to_string());
    let marks =
        tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5)))
            .await??;
    Ok(marks)
}

/// A copy of the message that outlives the consumer's buffer.
pub fn owned<M: Message>(m: &M) -> KafkaMessage {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    KafkaMessage {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}
