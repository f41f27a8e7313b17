//! Iceberg warehouse destinations.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::destinations::{
    CreateDestinationRequest, Destination, DestinationSettings, UpdateDestinationRequest, WarehouseUri,
};
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::{DestinationId, Problem, Role};
use icehouse_workers::egress::EgressError;

use crate::auth::RequestContext;
use crate::db::{self, destinations::DestinationRow, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/api/v1/destinations", tag = "destinations", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<Destination>))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Destination>>> {
    ctx.require(Role::Viewer)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::destinations::list(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    Ok(Json(Page { items: rows.iter().map(DestinationRow::to_api).collect(), next_cursor }))
}

#[utoipa::path(
    post, path = "/api/v1/destinations", tag = "destinations", security(("bearer" = [])),
    request_body = CreateDestinationRequest,
    responses(
        (status = 201, body = Destination),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreateDestinationRequest>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    ctx.require(Role::Editor)?;
    allowed_here(&state, &req.warehouse_uri, req.s3_access_key_id.is_some())?;
    endpoint_allowed(&state, req.s3_endpoint.as_deref()).await?;
    let row = DestinationRow {
        id: uuid::Uuid::nil(),
        tenant_id: ctx.tenant_id.as_uuid(),
        name: req.name,
        warehouse_uri: normalise_uri(&req.warehouse_uri),
        s3_endpoint: req.s3_endpoint,
        s3_region: req.s3_region,
        s3_access_key_id: req.s3_access_key_id,
        s3_secret_access_key_enc: req.s3_secret_access_key.as_deref().map(|s| state.secrets.seal(s)).transpose()?,
        default_namespace: req.default_namespace,
        created_at: Default::default(),
        updated_at: Default::default(),
    };
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let dest = db::destinations::insert(&mut tx, ctx.tenant_id, &row).await?.to_api();
    db::audit::record(&mut tx, &ctx, "destination.create", "destination", dest.id, None::<&()>, Some(&dest)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(dest)))
}

#[utoipa::path(
    get, path = "/api/v1/destinations/{destination_id}", tag = "destinations", security(("bearer" = [])),
    params(("destination_id" = DestinationId, Path)),
    responses((status = 200, body = Destination))
)]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<DestinationId>,
) -> ApiResult<Json<Destination>> {
    ctx.require(Role::Viewer)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row =
        db::destinations::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("destination"))?;
    tx.commit().await?;
    Ok(Json(row.to_api()))
}

#[utoipa::path(
    patch, path = "/api/v1/destinations/{destination_id}", tag = "destinations", security(("bearer" = [])),
    params(("destination_id" = DestinationId, Path)),
    request_body = UpdateDestinationRequest,
    responses(
        (status = 200, body = Destination),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<DestinationId>,
    ApiJson(req): ApiJson<UpdateDestinationRequest>,
) -> ApiResult<Json<Destination>> {
    ctx.require(Role::Editor)?;
    // A new endpoint's name is looked up before the row is locked: a slow
    // name server holds no transaction. One kept as it is was checked when
    // it was saved; a worker looks it up again before it writes there, and
    // the API's own reads and writes check IP literals only.
    endpoint_allowed(&state, req.s3_endpoint.as_deref()).await?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let old =
        db::destinations::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("destination"))?;
    let before = old.to_api();
    let uri = req.warehouse_uri.as_deref().unwrap_or(&old.warehouse_uri);
    // Moving to a local warehouse drops the S3 settings.
    let s3 = matches!(WarehouseUri::parse(uri), Ok(WarehouseUri::S3 { .. }));
    let pick = |new: &Option<String>, old: &Option<String>| new.clone().or(if s3 { old.clone() } else { None });
    let endpoint = pick(&req.s3_endpoint, &old.s3_endpoint);
    let region = pick(&req.s3_region, &old.s3_region);
    let key_id = pick(&req.s3_access_key_id, &old.s3_access_key_id);
    let keeps_secret = s3 && old.s3_secret_access_key_enc.is_some();
    let settings = DestinationSettings {
        name: req.name.as_deref().unwrap_or(&old.name),
        warehouse_uri: uri,
        s3_endpoint: endpoint.as_deref(),
        s3_region: region.as_deref(),
        s3_access_key_id: key_id.as_deref(),
        new_s3_secret_access_key: req.s3_secret_access_key.as_deref(),
        s3_secret_access_key_set: req.s3_secret_access_key.is_some() || keeps_secret,
        default_namespace: req.default_namespace.as_deref().unwrap_or(&old.default_namespace),
    };
    settings.validate().map_err(ApiError::Validation)?;
    allowed_here(&state, settings.warehouse_uri, settings.s3_access_key_id.is_some())?;
    let secret = match &req.s3_secret_access_key {
        Some(s) => Some(state.secrets.seal(s)?),
        None if keeps_secret => old.s3_secret_access_key_enc.clone(),
        None => None,
    };
    let row = DestinationRow {
        name: settings.name.to_string(),
        warehouse_uri: normalise_uri(settings.warehouse_uri),
        default_namespace: settings.default_namespace.to_string(),
        s3_endpoint: endpoint,
        s3_region: region,
        s3_access_key_id: key_id,
        s3_secret_access_key_enc: secret,
        ..old
    };
    let after = db::destinations::update(&mut tx, ctx.tenant_id, &row).await?.to_api();
    db::audit::record(&mut tx, &ctx, "destination.update", "destination", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(
    delete, path = "/api/v1/destinations/{destination_id}", tag = "destinations", security(("bearer" = [])),
    params(("destination_id" = DestinationId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used by a pipeline", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<DestinationId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Editor)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let before =
        db::destinations::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("destination"))?;
    db::destinations::delete(&mut tx, ctx.tenant_id, id).await?;
    db::audit::record(&mut tx, &ctx, "destination.delete", "destination", id, Some(&before.to_api()), None::<&()>)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server's limits on what a tenant's warehouse may be
/// (`destinations.*` settings), on top of the request's own validity.
fn allowed_here(state: &AppState, warehouse_uri: &str, has_keys: bool) -> ApiResult<()> {
    let policy = &state.config.destinations;
    match WarehouseUri::parse(warehouse_uri) {
        Ok(WarehouseUri::File { path }) => match &policy.local_root {
            None => Err(ApiError::field(
                "warehouse_uri",
                "file:// warehouses are turned off on this server (an operator can allow a folder with \
                 destinations.local_root); use an s3:// warehouse",
            )),
            Some(root) if !std::path::Path::new(path).starts_with(root) => Err(ApiError::field(
                "warehouse_uri",
                format!("file:// warehouses on this server must be inside {}", root.display()),
            )),
            Some(_) => Ok(()),
        },
        Ok(WarehouseUri::S3 { .. }) if !has_keys && !policy.allow_host_credentials.unwrap_or(false) => {
            Err(ApiError::field(
                "s3_access_key_id",
                "this server does not lend its own AWS credentials: give an access key id and secret access key",
            ))
        }
        // Invalid URIs were refused by validation already.
        _ => Ok(()),
    }
}

/// An S3 endpoint must pass the egress policy (`egress.*`): a tenant may
/// not point the data plane at the server's own network. A name that does
/// not resolve (yet) is left to fail where it is used.
async fn endpoint_allowed(state: &AppState, endpoint: Option<&str>) -> ApiResult<()> {
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()).map(str::to_string) else { return Ok(()) };
    let egress = state.egress.clone();
    match tokio::task::spawn_blocking(move || egress.check_url(&endpoint)).await.map_err(ApiError::internal)? {
        Err(e @ (EgressError::Forbidden(_) | EgressError::Invalid { .. })) => {
            Err(ApiError::field("s3_endpoint", e.to_string()))
        }
        Err(EgressError::Unresolved { .. }) | Ok(()) => Ok(()),
    }
}

/// Stores warehouse URIs without a trailing slash, so equal locations compare equal.
fn normalise_uri(uri: &str) -> String {
    match WarehouseUri::parse(uri) {
        Ok(WarehouseUri::File { path }) => format!("file://{path}"),
        Ok(WarehouseUri::S3 { bucket, prefix: "" }) => format!("s3://{bucket}"),
        Ok(WarehouseUri::S3 { bucket, prefix }) => format!("s3://{bucket}/{prefix}"),
        Err(_) => uri.to_string(),
    }
}
