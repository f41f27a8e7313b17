//! Iceberg warehouse destinations. The S3 secret key is stored sealed.

use chrono::{DateTime, Utc};
use icehouse_api::destinations::Destination;
use icehouse_api::{DestinationId, TenantId};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Clone, Debug, FromRow)]
pub struct DestinationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub warehouse_uri: String,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key_enc: Option<Vec<u8>>,
    pub default_namespace: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DestinationRow {
    pub fn to_api(&self) -> Destination {
        Destination {
            id: DestinationId::from_uuid(self.id),
            name: self.name.clone(),
            warehouse_uri: self.warehouse_uri.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_region: self.s3_region.clone(),
            s3_access_key_id: self.s3_access_key_id.clone(),
            s3_secret_access_key_set: self.s3_secret_access_key_enc.is_some(),
            default_namespace: self.default_namespace.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

const COLUMNS: &str = "id, tenant_id, name, warehouse_uri, s3_endpoint, s3_region, s3_access_key_id, \
                       s3_secret_access_key_enc, default_namespace, created_at, updated_at";

pub async fn insert(tx: &mut Tx, tenant: TenantId, row: &DestinationRow) -> Result<DestinationRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO destinations (id, tenant_id, name, warehouse_uri, s3_endpoint, s3_region, s3_access_key_id,
                                   s3_secret_access_key_enc, default_namespace)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(&row.name)
    .bind(&row.warehouse_uri)
    .bind(&row.s3_endpoint)
    .bind(&row.s3_region)
    .bind(&row.s3_access_key_id)
    .bind(&row.s3_secret_access_key_enc)
    .bind(&row.default_namespace)
    .fetch_one(&mut **tx)
    .await
}

pub async fn update(tx: &mut Tx, tenant: TenantId, row: &DestinationRow) -> Result<DestinationRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE destinations SET name = $3, warehouse_uri = $4, s3_endpoint = $5, s3_region = $6,
                s3_access_key_id = $7, s3_secret_access_key_enc = $8, default_namespace = $9, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.warehouse_uri)
    .bind(&row.s3_endpoint)
    .bind(&row.s3_region)
    .bind(&row.s3_access_key_id)
    .bind(&row.s3_secret_access_key_enc)
    .bind(&row.default_namespace)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(
    tx: &mut Tx,
    tenant: TenantId,
    id: DestinationId,
    lock: bool,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM destinations WHERE tenant_id = $1 AND id = $2{lock}"))
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
) -> Result<Vec<DestinationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}

pub async fn delete(tx: &mut Tx, tenant: TenantId, id: DestinationId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM destinations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}
