//! The tenant's Iceberg tables: what they hold and where external readers
//! find them.

use anyhow::Context;
use axum::extract::State;
use axum::Json;
use icehouse_api::status::{SnapshotInfo, TableDetail, TableSummary};
use icehouse_api::{Problem, Role};
use icehouse_workers::egress::EgressPolicy;
use icehouse_workers::iceberg::{self as ice, LoadedTable};

use crate::auth::RequestContext;
use crate::crypto::SecretBox;
use crate::db::{self, destinations::DestinationRow};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::state::AppState;

/// Every table in the tenant's warehouses, with row and snapshot counts.
#[utoipa::path(
    get, path = "/api/v1/tables", tag = "tables", security(("bearer" = [])),
    responses((status = 200, body = Vec<TableSummary>), (status = 502, description = "A warehouse could not be reached", body = Problem, content_type = "application/problem+json"))
)]
pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Vec<TableSummary>>> {
    ctx.require(Role::Viewer)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let destinations = db::destinations::list(&mut tx, ctx.tenant_id, None, i64::from(i32::MAX) - 1).await?;
    let mut pointers = Vec::new();
    for dest in &destinations {
        let Some(warehouse) = warehouse(dest, &state.secrets, &state.egress) else { continue };
        let tables = ice::table_pointers(&mut tx, &warehouse).await?;
        pointers.push((warehouse, tables));
    }
    tx.commit().await?;
    // The metadata files are read with no transaction open: a slow or
    // silent bucket holds no database connection while it is waited for.
    let mut out = Vec::new();
    for (warehouse, tables) in &pointers {
        for (namespace, name, location) in tables {
            let table = ice::load_at(warehouse, namespace, name, location.clone()).await?;
            out.push(summary(warehouse, namespace, name, &table));
        }
    }
    Ok(Json(out))
}

/// One table: schema, partition spec, snapshots with their summaries, and the
/// current metadata location (what PyIceberg, DuckDB or Spark open).
#[utoipa::path(
    get, path = "/api/v1/tables/{namespace}/{table}", tag = "tables", security(("bearer" = [])),
    params(("namespace" = String, Path), ("table" = String, Path)),
    responses((status = 200, body = TableDetail), (status = 502, description = "A warehouse could not be reached", body = Problem, content_type = "application/problem+json"))
)]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<TableDetail>> {
    ctx.require(Role::Viewer)?;
    // Postgres cannot hold U+0000 in a name, so no table has one (and looking
    // it up would be a database error, not a miss).
    if namespace.contains('\0') || name.contains('\0') {
        return Err(ApiError::NotFound("table"));
    }
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let destinations = db::destinations::list(&mut tx, ctx.tenant_id, None, i64::from(i32::MAX) - 1).await?;
    let mut found = None;
    for dest in &destinations {
        let Some(warehouse) = warehouse(dest, &state.secrets, &state.egress) else { continue };
        if let Some(location) = ice::table_pointer(&mut tx, &warehouse, &namespace, &name).await? {
            found = Some((warehouse, location));
            break;
        }
    }
    tx.commit().await?;
    // As in `list`: the metadata file is read with no transaction open.
    if let Some((warehouse, location)) = found {
        let table = ice::load_at(&warehouse, &namespace, &name, location).await?;
        let md = &table.metadata;
        let mut snapshots: Vec<SnapshotInfo> = md
            .snapshots()
            .map(|s| SnapshotInfo {
                snapshot_id: s.snapshot_id(),
                parent_snapshot_id: s.parent_snapshot_id(),
                sequence_number: s.sequence_number(),
                timestamp_ms: s.timestamp_ms(),
                operation: s.summary().operation.as_str().to_string(),
                summary: s.summary().additional_properties.clone().into_iter().collect(),
            })
            .collect();
        snapshots.sort_by_key(|s| s.sequence_number);
        return Ok(Json(TableDetail {
            summary: summary(&warehouse, &namespace, &name, &table),
            location: md.location().to_string(),
            schema: serde_json::to_value(md.current_schema().as_ref()).map_err(ApiError::internal)?,
            partition_spec: serde_json::to_value(md.default_partition_spec().as_ref()).map_err(ApiError::internal)?,
            snapshots,
        }));
    }
    Err(ApiError::NotFound("table"))
}

/// The destination as a warehouse to read and write: `file://` or `s3://`
/// (its secret access key unsealed here, in memory only). `None`, with a
/// warning in the log, for a destination that cannot be opened (a local root
/// that cannot be created, a secret sealed under another master key): the
/// callers list or look up tables across all destinations and skip it. So
/// is one whose S3 endpoint is an address the egress policy refuses (names
/// were checked when the destination was saved; no lookup runs here).
pub fn warehouse(dest: &DestinationRow, secrets: &SecretBox, egress: &EgressPolicy) -> Option<ice::Warehouse> {
    let opened = (|| -> anyhow::Result<ice::Warehouse> {
        let s3 = ice::S3Access {
            endpoint: dest.s3_endpoint.clone(),
            region: dest.s3_region.clone(),
            access_key_id: dest.s3_access_key_id.clone(),
            secret_access_key: dest
                .s3_secret_access_key_enc
                .as_deref()
                .map(|s| secrets.open(s).context("unsealing the S3 secret access key"))
                .transpose()?,
        };
        s3.check_egress(egress, false)?;
        Ok(ice::Warehouse::open(&dest.id.to_string(), &dest.warehouse_uri, &s3)?)
    })();
    match opened {
        Ok(wh) => Some(wh),
        Err(e) => {
            tracing::warn!(destination = %dest.id, error = format!("{e:#}"), "cannot open the destination's warehouse");
            None
        }
    }
}

fn summary(warehouse: &ice::Warehouse, namespace: &str, name: &str, table: &LoadedTable) -> TableSummary {
    let md = &table.metadata;
    let row_count = md
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-records").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    TableSummary {
        catalog: warehouse.catalog_name.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        row_count,
        snapshot_count: md.snapshots().count(),
        metadata_location: table.metadata_location.clone(),
    }
}
