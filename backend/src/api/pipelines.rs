//! Pipelines: create, list, get, update, delete, pause and resume.
//!
//! This records what should run. Running it (workers, leases, commits) is
//! the data plane's job and arrives with the ingestion work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::pipelines::{
    CompiledMapping, CreatePipelineRequest, DesiredState, Mapping, PartitionField, Pipeline, UpdatePipelineRequest,
};
use icehouse_api::status::{MinuteBucket, PartitionStatus, PipelineState, PipelineStatus};
use icehouse_api::{ConnectionId, DestinationId, FieldError, PipelineId, Problem, Role};
use icehouse_workers::coord::{Scope, SliceState};
use icehouse_workers::iceberg::{self as ice, LakeErrorKind, LoadedTable};
use icehouse_workers::mapping::{partition_difference, schema_differences, table_schema};
use sqlx::types::Json as SqlJson;

use crate::auth::RequestContext;
use crate::db::{self, pipelines::to_text, pipelines::PipelineRow, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/api/v1/pipelines", tag = "pipelines", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<Pipeline>))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Pipeline>>> {
    ctx.require(Role::Viewer)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::pipelines::list(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    let items = rows.iter().map(PipelineRow::to_api).collect::<anyhow::Result<_>>()?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    post, path = "/api/v1/pipelines", tag = "pipelines", security(("bearer" = [])),
    request_body = CreatePipelineRequest,
    responses(
        (status = 201, body = Pipeline),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name or table taken", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The destination's warehouse could not be reached", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreatePipelineRequest>,
) -> ApiResult<(StatusCode, Json<Pipeline>)> {
    ctx.require(Role::Editor)?;
    let mapping = compile(&req.mapping)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let connection = db::connections::get(&mut tx, ctx.tenant_id, req.connection_id, false).await?;
    let destination = db::destinations::get(&mut tx, ctx.tenant_id, req.destination_id, false).await?;
    let mut missing = Vec::new();
    if connection.is_none() {
        missing.push(FieldError::new("connection_id", "no such connection"));
    }
    let Some(destination) = destination else {
        missing.push(FieldError::new("destination_id", "no such destination"));
        return Err(ApiError::Validation(missing));
    };
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    let row = PipelineRow {
        id: uuid::Uuid::nil(),
        tenant_id: ctx.tenant_id.as_uuid(),
        name: req.name,
        connection_id: req.connection_id.as_uuid(),
        topic: req.topic,
        destination_id: req.destination_id.as_uuid(),
        namespace: req.namespace.unwrap_or_else(|| destination.default_namespace.clone()),
        table_name: req.table_name,
        format: to_text(&req.format),
        mapping: SqlJson(req.mapping),
        partition_by: SqlJson(req.partition_by),
        start_position: to_text(&req.start_position),
        flush_interval_ms: req.flush_interval_ms as i32,
        desired_state: to_text(&req.desired_state),
        created_at: Default::default(),
        updated_at: Default::default(),
    };
    // The insert is tried and rolled back first, so that a taken name or
    // table is refused before any file is written.
    db::pipelines::insert(&mut tx, ctx.tenant_id, &row).await?;
    tx.rollback().await?;
    let warehouse = super::tables::warehouse(&destination, &state.secrets, &state.egress);
    // Run to the end even if the caller goes away: tables made for a
    // pipeline whose row is then not written are dropped again.
    let task = tokio::spawn(async move { insert_with_tables(&state, &ctx, &row, &mapping, warehouse).await });
    let pipeline =
        task.await.map_err(|e| ApiError::internal(anyhow::anyhow!("creating the pipeline failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(pipeline)))
}

/// The pipeline's table and dead-letter table exist from the start, so
/// readers and the tables page see them before the first message arrives.
/// They are made before the pipeline's row, with no transaction open while
/// the warehouse is written (a silent bucket holds no connection). A table
/// that is already there (left by a deleted pipeline) must fit the mapping
/// before anything is made; tables this call made are dropped again if the
/// row cannot be written.
async fn insert_with_tables(
    state: &AppState,
    ctx: &RequestContext,
    row: &PipelineRow,
    mapping: &CompiledMapping,
    warehouse: Option<ice::Warehouse>,
) -> ApiResult<Pipeline> {
    let Some(warehouse) = warehouse else { return insert(state, ctx, row).await };
    let scope = Scope::tenant(&state.pool, ctx.tenant_id);
    let (namespace, name) = (row.namespace.as_str(), row.table_name.as_str());
    let dead_name = ice::dead_letter_table_name(name);
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let existing = ice::table_pointer(&mut tx, &warehouse, namespace, name).await?;
    let dead_existed = ice::table_pointer(&mut tx, &warehouse, namespace, &dead_name).await?.is_some();
    tx.commit().await?;
    if let Some(location) = existing.clone() {
        let table = ice::load_at(&warehouse, namespace, name, location).await?;
        check_fits(&table, mapping, Some(&row.partition_by))?;
    }
    let (table, dead) = ice::create_pipeline_tables(scope, &warehouse, namespace, name, mapping, &row.partition_by)
        .await
        .map_err(|e| match e.kind() {
            LakeErrorKind::Invalid | LakeErrorKind::InvalidMetadata | LakeErrorKind::NotFound => {
                ApiError::field("destination_id", format!("cannot create the table in this warehouse: {e}"))
            }
            LakeErrorKind::Conflict => {
                tracing::info!(error = %e, "creating a pipeline's tables lost a race");
                ApiError::Conflict { field: None, detail: "the table was being created concurrently; try again".into() }
            }
            LakeErrorKind::Storage => ApiError::from(e),
        })?;
    // (A creator that won a race made the table: it must fit too.)
    let inserted = match check_fits(&table, mapping, Some(&row.partition_by)) {
        Ok(()) => insert(state, ctx, row).await,
        Err(e) => Err(e),
    };
    if inserted.is_err() {
        let made = [(existing.is_none(), &table), (!dead_existed, &dead)];
        for (_, made) in made.iter().filter(|(new, t)| *new && t.metadata.snapshots().next().is_none()) {
            let dropped =
                ice::drop_untouched(scope, &warehouse, &made.namespace, &made.name, &made.metadata_location).await;
            if let Err(e) = dropped {
                tracing::warn!(table = %made.ident(), error = %e, "could not drop a table made for a pipeline that was not");
            }
        }
    }
    inserted
}

/// The pipeline's row, its lease and the audit entry.
async fn insert(state: &AppState, ctx: &RequestContext, row: &PipelineRow) -> ApiResult<Pipeline> {
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let pipeline = db::pipelines::insert(&mut tx, ctx.tenant_id, row).await?.to_api()?;
    db::pipelines::insert_lease(&mut tx, ctx.tenant_id, pipeline.id, pipeline.desired_state == DesiredState::Paused)
        .await?;
    db::audit::record(&mut tx, ctx, "pipeline.create", "pipeline", pipeline.id, None::<&()>, Some(&pipeline)).await?;
    tx.commit().await?;
    Ok(pipeline)
}

#[utoipa::path(
    get, path = "/api/v1/pipelines/{pipeline_id}", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    responses((status = 200, body = Pipeline))
)]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
) -> ApiResult<Json<Pipeline>> {
    ctx.require(Role::Viewer)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row = db::pipelines::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("pipeline"))?;
    tx.commit().await?;
    Ok(Json(row.to_api()?))
}

#[utoipa::path(
    patch, path = "/api/v1/pipelines/{pipeline_id}", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    request_body = UpdatePipelineRequest,
    responses(
        (status = 200, body = Pipeline),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
    ApiJson(req): ApiJson<UpdatePipelineRequest>,
) -> ApiResult<Json<Pipeline>> {
    ctx.require(Role::Editor)?;
    if let Some(mapping) = &req.mapping {
        check_new_mapping(&state, &ctx, id, mapping).await?;
    }
    change(&state, &ctx, id, "pipeline.update", |row| {
        if let Some(name) = req.name {
            row.name = name;
        }
        if let Some(mapping) = req.mapping {
            row.mapping = SqlJson(mapping);
        }
        if let Some(ms) = req.flush_interval_ms {
            row.flush_interval_ms = ms as i32;
        }
        if let Some(desired) = req.desired_state {
            row.desired_state = to_text(&desired);
        }
        Ok(())
    })
    .await
    .map(Json)
}

#[utoipa::path(
    delete, path = "/api/v1/pipelines/{pipeline_id}", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Editor)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let before = db::pipelines::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("pipeline"))?;
    db::pipelines::delete(&mut tx, ctx.tenant_id, id).await?;
    db::audit::record(&mut tx, &ctx, "pipeline.delete", "pipeline", id, Some(&before.to_api()?), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops ingestion after the current commit; nothing is lost.
#[utoipa::path(
    post, path = "/api/v1/pipelines/{pipeline_id}/pause", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    responses((status = 200, body = Pipeline), (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn pause(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
) -> ApiResult<Json<Pipeline>> {
    set_state(&state, &ctx, id, DesiredState::Paused, "pipeline.pause").await
}

/// Resumes ingestion from where it stopped.
#[utoipa::path(
    post, path = "/api/v1/pipelines/{pipeline_id}/resume", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    responses((status = 200, body = Pipeline), (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn resume(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
) -> ApiResult<Json<Pipeline>> {
    set_state(&state, &ctx, id, DesiredState::Running, "pipeline.resume").await
}

async fn set_state(
    state: &AppState,
    ctx: &RequestContext,
    id: PipelineId,
    desired: DesiredState,
    action: &str,
) -> ApiResult<Json<Pipeline>> {
    ctx.require(Role::Editor)?;
    change(state, ctx, id, action, |row| {
        row.desired_state = to_text(&desired);
        Ok(())
    })
    .await
    .map(Json)
}

/// A new mapping keeps the partition columns and fits the table as it is.
/// The table a pipeline writes to never changes (destination, namespace and
/// table name are fixed once created), so this may read it before the update
/// locks the row.
async fn check_new_mapping(state: &AppState, ctx: &RequestContext, id: PipelineId, mapping: &Mapping) -> ApiResult<()> {
    let mapping = compile(mapping)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row = db::pipelines::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("pipeline"))?;
    if let Some(p) = row.partition_by.0.iter().find(|p| mapping.column(&p.column).is_none()) {
        return Err(ApiError::field(
            "mapping.columns",
            format!("the table is partitioned by `{}`, which the mapping must keep", p.column),
        ));
    }
    let destination =
        db::destinations::get(&mut tx, ctx.tenant_id, DestinationId::from_uuid(row.destination_id), false)
            .await?
            .ok_or(ApiError::NotFound("destination"))?;
    // A warehouse that cannot be opened has no table to compare with (and no
    // worker can run on it either); a table not created yet will be made from
    // the new mapping.
    let pointer = match super::tables::warehouse(&destination, &state.secrets, &state.egress) {
        Some(wh) => ice::table_pointer(&mut tx, &wh, &row.namespace, &row.table_name)
            .await
            .map_err(ApiError::from)?
            .map(|location| (wh, location)),
        None => None,
    };
    tx.commit().await?;
    // The metadata file is read with no transaction open.
    match pointer {
        Some((wh, location)) => {
            let table = ice::load_at(&wh, &row.namespace, &row.table_name, location).await.map_err(ApiError::from)?;
            check_fits(&table, &mapping, None)
        }
        None => Ok(()),
    }
}

/// Refuses a mapping (and, on create, a partitioning) the existing table
/// cannot take as it is: until schema evolution exists, a worker would fail
/// on it and restart forever. A change of paths or timestamp formats only
/// leaves the schema as it is, so it passes.
fn check_fits(
    table: &LoadedTable,
    mapping: &CompiledMapping,
    partition_by: Option<&[PartitionField]>,
) -> ApiResult<()> {
    let name = format!("{}.{}", table.namespace, table.name);
    let current = table.metadata.current_schema();
    let wanted = table_schema(mapping).map_err(|e| ApiError::field("mapping", format!("{e:#}")))?;
    let mut errors = Vec::new();
    let differences = schema_differences(current, &wanted);
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(ToString::to_string).collect();
        errors.push(FieldError::new(
            "mapping",
            format!(
                "does not match the existing table `{name}`, and changing a table's schema is not supported yet: {}",
                list.join("; ")
            ),
        ));
    }
    let spec = table.metadata.default_partition_spec();
    if let Some(difference) = partition_by.and_then(|p| partition_difference(current, spec, p)) {
        errors
            .push(FieldError::new("partition_by", format!("does not match the existing table `{name}`: {difference}")));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The request's mapping, compiled once for the tables and the checks
/// (the request's validation has already refused what does not compile).
fn compile(mapping: &Mapping) -> ApiResult<CompiledMapping> {
    CompiledMapping::compile(mapping).map_err(|e| ApiError::Validation(e.0))
}

/// Loads the pipeline locked, applies `edit`, stores and audits it.
async fn change(
    state: &AppState,
    ctx: &RequestContext,
    id: PipelineId,
    action: &str,
    edit: impl FnOnce(&mut PipelineRow) -> ApiResult<()>,
) -> ApiResult<Pipeline> {
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let mut row = db::pipelines::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("pipeline"))?;
    let before = row.to_api()?;
    edit(&mut row)?;
    let after = db::pipelines::update(&mut tx, ctx.tenant_id, &row).await?.to_api()?;
    db::audit::record(&mut tx, &ctx.clone(), action, "pipeline", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(after)
}

/// What the pipeline is doing: state, offsets and lag per partition, counts,
/// the last error, and the last hour minute by minute.
#[utoipa::path(
    get, path = "/api/v1/pipelines/{pipeline_id}/status", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path)),
    responses((status = 200, body = PipelineStatus))
)]
pub async fn status(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
) -> ApiResult<Json<PipelineStatus>> {
    ctx.require(Role::Viewer)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let pipeline =
        db::pipelines::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("pipeline"))?;
    let connection =
        db::connections::get(&mut tx, ctx.tenant_id, ConnectionId::from_uuid(pipeline.connection_id), false)
            .await?
            .ok_or(ApiError::NotFound("connection"))?;
    let lease = db::pipelines::lease(&mut tx, ctx.tenant_id, id).await?;
    let offsets = db::pipelines::offsets(&mut tx, ctx.tenant_id, id).await?;
    let minutes = db::pipelines::minutes(&mut tx, ctx.tenant_id, id).await?;
    tx.commit().await?;

    let settings = super::connections::kafka_settings(&state, &connection)?;
    let timeout = std::time::Duration::from_millis(state.config.kafka.probe_timeout_ms.min(3000));
    let partitions: Vec<i32> = offsets.iter().map(|o| o.0).collect();
    let (watermarks, watermarks_error) =
        match icehouse_workers::kafka::high_watermarks(settings, pipeline.topic.clone(), partitions, timeout).await {
            Ok(w) => (w, None),
            Err(e) => (Default::default(), Some(format!("{e:#}"))),
        };
    let partitions = offsets
        .into_iter()
        .map(|(partition, committed_offset)| {
            let high_watermark = watermarks.get(&partition).copied();
            PartitionStatus {
                partition,
                committed_offset,
                high_watermark,
                lag: high_watermark.map(|h| (h - committed_offset).max(0)),
            }
        })
        .collect();
    let paused = pipeline.desired_state == "paused";
    let lease = lease.unwrap_or_default();
    let state = match lease.state {
        _ if paused => PipelineState::Paused,
        SliceState::Running => PipelineState::Running,
        SliceState::Failing => PipelineState::Failing,
        // All slices given back but the pipeline meant to run: waiting for a worker.
        SliceState::Starting | SliceState::Paused => PipelineState::Starting,
    };
    Ok(Json(PipelineStatus {
        pipeline_id: id,
        state,
        partitions,
        rows_committed: lease.rows_committed,
        dead_letter_rows: lease.dead_letter_rows,
        last_commit_at: lease.last_commit_at,
        last_error: lease.last_error,
        last_error_at: lease.last_error_at,
        minutes: minute_buckets(chrono::Utc::now(), &minutes),
        watermarks_error,
    }))
}

/// 60 buckets ending with the current minute, zeros where nothing was committed.
fn minute_buckets(
    now: chrono::DateTime<chrono::Utc>,
    rows: &[(chrono::DateTime<chrono::Utc>, i64, i64)],
) -> Vec<MinuteBucket> {
    use chrono::{DurationRound, TimeDelta};
    let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    (0..60)
        .rev()
        .map(|ago| {
            let minute = this_minute - TimeDelta::minutes(ago);
            let (rows, dead_letter_rows) =
                rows.iter().find(|(m, ..)| *m == minute).map(|(_, r, d)| (*r, *d)).unwrap_or_default();
            MinuteBucket { minute, rows, dead_letter_rows }
        })
        .collect()
}
