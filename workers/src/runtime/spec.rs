//! What a worker needs to run one pipeline, read from the control plane's
//! tables (the backend and the workers meet only in Postgres).

use std::sync::Arc;

use anyhow::Context;
use icehouse_api::connections::{SaslMechanism, SecurityProtocol};
use icehouse_api::pipelines::{CompiledMapping, Mapping, MessageFormat, PartitionField, StartPosition};
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::coord::{self, state};
use crate::egress::EgressPolicy;
use crate::iceberg::{S3Access, Warehouse};
use crate::kafka::KafkaSettings;
use crate::secrets::SecretBox;

#[derive(Clone, Debug)]
pub struct PipelineSpec {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub topic: String,
    pub kafka: KafkaSettings,
    pub destination_id: Uuid,
    pub warehouse_uri: String,
    /// How to reach an `s3://` warehouse, the secret unsealed (its Debug hides it).
    pub s3: S3Access,
    pub namespace: String,
    pub table_name: String,
    pub format: MessageFormat,
    pub mapping: CompiledMapping,
    pub partition_by: Vec<PartitionField>,
    pub start_position: StartPosition,
    pub flush_interval_ms: u64,
}

impl PipelineSpec {
    /// The destination's warehouse (`file://` or `s3://`), its S3 endpoint
    /// checked against the egress policy first.
    pub async fn warehouse(&self) -> anyhow::Result<Warehouse> {
        let (egress, s3) = (self.kafka.egress.clone(), self.s3.clone());
        tokio::task::spawn_blocking(move || s3.check_egress(&egress, true)).await??;
        Ok(Warehouse::open(&self.destination_id.to_string(), &self.warehouse_uri, &self.s3)?)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    topic: String,
    namespace: String,
    table_name: String,
    format: String,
    mapping: Json<Mapping>,
    partition_by: Json<Vec<PartitionField>>,
    start_position: String,
    flush_interval_ms: i32,
    destination_id: Uuid,
    warehouse_uri: String,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key_enc: Option<Vec<u8>>,
    bootstrap_servers: Vec<String>,
    security_protocol: String,
    sasl_mechanism: Option<String>,
    sasl_username: Option<String>,
    sasl_password_enc: Option<Vec<u8>>,
}

/// The pipeline's current spec, or None once it is deleted.
pub async fn load(
    pool: &PgPool,
    secrets: &SecretBox,
    egress: &Arc<EgressPolicy>,
    pipeline_id: Uuid,
) -> anyhow::Result<Option<PipelineSpec>> {
    let mut tx = coord::begin_system(pool).await?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT p.id, p.tenant_id, p.topic, p.namespace, p.table_name, p.format, p.mapping, p.partition_by, p.start_position,
                p.flush_interval_ms, d.id AS destination_id, d.warehouse_uri,
                d.s3_endpoint, d.s3_region, d.s3_access_key_id, d.s3_secret_access_key_enc,
                c.bootstrap_servers, c.security_protocol, c.sasl_mechanism, c.sasl_username, c.sasl_password_enc
         FROM pipelines p
         JOIN connections c ON c.id = p.connection_id
         JOIN destinations d ON d.id = p.destination_id
         WHERE p.id = $1",
    )
    .bind(pipeline_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(r) = row else { return Ok(None) };
    let kafka = KafkaSettings {
        egress: egress.clone(),
        bootstrap_servers: r.bootstrap_servers,
        security_protocol: SecurityProtocol::parse(&r.security_protocol)
            .ok_or_else(|| anyhow::anyhow!("unknown security protocol {}", r.security_protocol))?,
        sasl_mechanism: r.sasl_mechanism.as_deref().and_then(SaslMechanism::parse),
        sasl_username: r.sasl_username,
        sasl_password: r.sasl_password_enc.as_deref().map(|p| secrets.open(p)).transpose()?,
    };
    let s3 = S3Access {
        endpoint: r.s3_endpoint,
        region: r.s3_region,
        access_key_id: r.s3_access_key_id,
        secret_access_key: r
            .s3_secret_access_key_enc
            .as_deref()
            .map(|s| secrets.open(s).context("unsealing the destination's S3 secret access key"))
            .transpose()?,
    };
    Ok(Some(PipelineSpec {
        id: r.id,
        tenant_id: r.tenant_id,
        topic: r.topic,
        kafka,
        destination_id: r.destination_id,
        warehouse_uri: r.warehouse_uri,
        s3,
        namespace: r.namespace,
        table_name: r.table_name,
        format: state::message_format(&r.format)?,
        // The server compiled it before storing it; compiling here is the
        // worker's one read of its type strings and paths.
        mapping: CompiledMapping::compile(&r.mapping.0).context("the pipeline's stored mapping")?,
        partition_by: r.partition_by.0,
        start_position: state::start_position(&r.start_position)?,
        flush_interval_ms: r.flush_interval_ms.max(1) as u64,
    }))
}
