//! Kafka connections. The SASL password is stored sealed (see `crypto`).

use chrono::{DateTime, Utc};
use icehouse_api::connections::{Connection, SaslMechanism, SecurityProtocol};
use icehouse_api::{ConnectionId, TenantId};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Clone, Debug, FromRow)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub bootstrap_servers: Vec<String>,
    pub security_protocol: String,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password_enc: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ConnectionRow {
    pub fn protocol(&self) -> anyhow::Result<SecurityProtocol> {
        SecurityProtocol::parse(&self.security_protocol)
            .ok_or_else(|| anyhow::anyhow!("unknown security protocol {}", self.security_protocol))
    }

    pub fn mechanism(&self) -> anyhow::Result<Option<SaslMechanism>> {
        self.sasl_mechanism
            .as_deref()
            .map(|m| SaslMechanism::parse(m).ok_or_else(|| anyhow::anyhow!("unknown SASL mechanism {m}")))
            .transpose()
    }

    pub fn to_api(&self) -> anyhow::Result<Connection> {
        Ok(Connection {
            id: ConnectionId::from_uuid(self.id),
            name: self.name.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            security_protocol: self.protocol()?,
            sasl_mechanism: self.mechanism()?,
            sasl_username: self.sasl_username.clone(),
            sasl_password_set: self.sasl_password_enc.is_some(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, name, bootstrap_servers, security_protocol, sasl_mechanism, sasl_username, \
                       sasl_password_enc, created_at, updated_at";

pub async fn insert(tx: &mut Tx, tenant: TenantId, row: &ConnectionRow) -> Result<ConnectionRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO connections (id, tenant_id, name, bootstrap_servers, security_protocol, sasl_mechanism,
                                  sasl_username, sasl_password_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(&row.name)
    .bind(&row.bootstrap_servers)
    .bind(&row.security_protocol)
    .bind(&row.sasl_mechanism)
    .bind(&row.sasl_username)
    .bind(&row.sasl_password_enc)
    .fetch_one(&mut **tx)
    .await
}

pub async fn update(tx: &mut Tx, tenant: TenantId, row: &ConnectionRow) -> Result<ConnectionRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE connections SET name = $3, bootstrap_servers = $4, security_protocol = $5, sasl_mechanism = $6,
                sasl_username = $7, sasl_password_enc = $8, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.bootstrap_servers)
    .bind(&row.security_protocol)
    .bind(&row.sasl_mechanism)
    .bind(&row.sasl_username)
    .bind(&row.sasl_password_enc)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(
    tx: &mut Tx,
    tenant: TenantId,
    id: ConnectionId,
    lock: bool,
) -> Result<Option<ConnectionRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE tenant_id = $1 AND id = $2{lock}"))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

pub async fn list(
    tx: &mut Tx,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ConnectionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM connections WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}

pub async fn delete(tx: &mut Tx, tenant: TenantId, id: ConnectionId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}
