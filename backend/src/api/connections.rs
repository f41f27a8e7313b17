//! Kafka connections: CRUD, a live connection test, and topic listing.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::connections::{
    Connection, ConnectionSettings, ConnectionTestResult, CreateConnectionRequest, TopicList, UpdateConnectionRequest,
};
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::pipelines::{validate_topic, CompiledMapping, Mapping, MessageFormat};
use icehouse_api::sample::{SampleRequest, SampleResponse, SampledMessage, MAX_SAMPLE, MAX_SAMPLE_TEXT_BYTES};
use icehouse_api::validate::Validator;
use icehouse_api::{ConnectionId, Problem, Role};
use icehouse_workers::formats::RowDecoder;
use icehouse_workers::kafka::{self, KafkaSettings, SampleError};
use icehouse_workers::mapping::{suggest, table_schema, KafkaMessage};

use crate::auth::RequestContext;
use crate::db::{self, connections::ConnectionRow, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/api/v1/connections", tag = "connections", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<Connection>))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Connection>>> {
    ctx.require(Role::Viewer)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::connections::list(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    let items = rows.iter().map(ConnectionRow::to_api).collect::<anyhow::Result<_>>()?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    post, path = "/api/v1/connections", tag = "connections", security(("bearer" = [])),
    request_body = CreateConnectionRequest,
    responses(
        (status = 201, body = Connection),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreateConnectionRequest>,
) -> ApiResult<(StatusCode, Json<Connection>)> {
    ctx.require(Role::Editor)?;
    let row = ConnectionRow {
        id: uuid::Uuid::nil(),
        tenant_id: ctx.tenant_id.as_uuid(),
        name: req.name,
        bootstrap_servers: req.bootstrap_servers,
        security_protocol: req.security_protocol.as_str().into(),
        sasl_mechanism: req.sasl_mechanism.map(|m| m.as_str().into()),
        sasl_username: req.sasl_username,
        sasl_password_enc: req.sasl_password.as_deref().map(|p| state.secrets.seal(p)).transpose()?,
        created_at: Default::default(),
        updated_at: Default::default(),
    };
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let connection = db::connections::insert(&mut tx, ctx.tenant_id, &row).await?.to_api()?;
    db::audit::record(&mut tx, &ctx, "connection.create", "connection", connection.id, None::<&()>, Some(&connection))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(connection)))
}

#[utoipa::path(
    get, path = "/api/v1/connections/{connection_id}", tag = "connections", security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses((status = 200, body = Connection))
)]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ConnectionId>,
) -> ApiResult<Json<Connection>> {
    ctx.require(Role::Viewer)?;
    let row = load(&state, &ctx, id).await?;
    Ok(Json(row.to_api()?))
}

#[utoipa::path(
    patch, path = "/api/v1/connections/{connection_id}", tag = "connections", security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path)),
    request_body = UpdateConnectionRequest,
    responses(
        (status = 200, body = Connection),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ConnectionId>,
    ApiJson(req): ApiJson<UpdateConnectionRequest>,
) -> ApiResult<Json<Connection>> {
    ctx.require(Role::Editor)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let old = db::connections::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("connection"))?;
    let before = old.to_api()?;
    let protocol = req.security_protocol.unwrap_or(before.security_protocol);
    // Leaving SASL drops its settings; otherwise absent fields keep their value.
    let keep = protocol.uses_sasl();
    let mechanism = req.sasl_mechanism.or(if keep { before.sasl_mechanism } else { None });
    let username = req.sasl_username.clone().or(if keep { before.sasl_username.clone() } else { None });
    // A stored password goes only to the brokers it was given for: pointing
    // it at other servers, or sending it another way, needs it again (else an
    // editor could aim a colleague's password at a host of their own).
    let redirected = req.bootstrap_servers.as_ref().is_some_and(|s| *s != before.bootstrap_servers)
        || protocol != before.security_protocol
        || mechanism != before.sasl_mechanism;
    if keep && old.sasl_password_enc.is_some() && redirected && req.sasl_password.is_none() {
        return Err(ApiError::field(
            "sasl_password",
            "must be given again when bootstrap_servers, security_protocol or sasl_mechanism change",
        ));
    }
    let keeps_password = keep && old.sasl_password_enc.is_some();
    let settings = ConnectionSettings {
        name: req.name.as_deref().unwrap_or(&before.name),
        bootstrap_servers: req.bootstrap_servers.as_deref().unwrap_or(&before.bootstrap_servers),
        security_protocol: protocol,
        sasl_mechanism: mechanism,
        sasl_username: username.as_deref(),
        new_sasl_password: req.sasl_password.as_deref(),
        sasl_password_set: req.sasl_password.is_some() || keeps_password,
    };
    settings.validate().map_err(ApiError::Validation)?;
    let password = match &req.sasl_password {
        Some(p) => Some(state.secrets.seal(p)?),
        None if keeps_password => old.sasl_password_enc.clone(),
        None => None,
    };
    let row = ConnectionRow {
        name: settings.name.to_string(),
        bootstrap_servers: settings.bootstrap_servers.to_vec(),
        security_protocol: protocol.as_str().into(),
        sasl_mechanism: mechanism.map(|m| m.as_str().into()),
        sasl_username: username,
        sasl_password_enc: password,
        ..old
    };
    let after = db::connections::update(&mut tx, ctx.tenant_id, &row).await?.to_api()?;
    db::audit::record(&mut tx, &ctx, "connection.update", "connection", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(
    delete, path = "/api/v1/connections/{connection_id}", tag = "connections", security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used by a pipeline", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ConnectionId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Editor)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let before =
        db::connections::get(&mut tx, ctx.tenant_id, id, true).await?.ok_or(ApiError::NotFound("connection"))?;
    db::connections::delete(&mut tx, ctx.tenant_id, id).await?;
    db::audit::record(&mut tx, &ctx, "connection.delete", "connection", id, Some(&before.to_api()?), None::<&()>)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connects to the cluster now and reports brokers and topics, or why it
/// could not (a `failed` status with a typed kind; the call itself succeeds).
#[utoipa::path(
    post, path = "/api/v1/connections/{connection_id}/test", tag = "connections", security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses((status = 200, body = ConnectionTestResult))
)]
pub async fn test(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ConnectionId>,
) -> ApiResult<Json<ConnectionTestResult>> {
    ctx.require(Role::Viewer)?;
    let row = load(&state, &ctx, id).await?;
    let settings = kafka_settings(&state, &row)?;
    let result = kafka::probe(settings, probe_timeout(&state)).await;
    Ok(Json(result))
}

/// The cluster's topics with their partition counts (live).
#[utoipa::path(
    get, path = "/api/v1/connections/{connection_id}/topics", tag = "connections", security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses(
        (status = 200, body = TopicList),
        (status = 502, description = "The cluster could not be used; `kind` says why", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn topics(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ConnectionId>,
) -> ApiResult<Json<TopicList>> {
    ctx.require(Role::Viewer)?;
    let row = load(&state, &ctx, id).await?;
    let settings = kafka_settings(&state, &row)?;
    match kafka::probe(settings, probe_timeout(&state)).await {
        ConnectionTestResult::Ok { topics, .. } => Ok(Json(TopicList { topics })),
        ConnectionTestResult::Failed { failure, .. } => {
            Err(ApiError::Kafka { kind: failure.kind, message: failure.message })
        }
    }
}

/// Tests settings without saving them: the wizard's "Test connection".
#[utoipa::path(
    post, path = "/api/v1/connections/test", tag = "connections", security(("bearer" = [])),
    request_body = CreateConnectionRequest,
    responses(
        (status = 200, body = ConnectionTestResult),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn test_unsaved(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreateConnectionRequest>,
) -> ApiResult<Json<ConnectionTestResult>> {
    ctx.require(Role::Editor)?;
    let settings = KafkaSettings {
        egress: state.egress.clone(),
        bootstrap_servers: req.bootstrap_servers,
        security_protocol: req.security_protocol,
        sasl_mechanism: req.sasl_mechanism,
        sasl_username: req.sasl_username,
        sasl_password: req.sasl_password,
    };
    Ok(Json(kafka::probe(settings, probe_timeout(&state)).await))
}

/// Reads up to 100 of the newest messages of a topic and suggests a mapping
/// from them; each message says whether it fits the suggestion (or the
/// columns sent) and, if not, why it would go to the dead-letter table.
#[utoipa::path(
    post, path = "/api/v1/connections/{connection_id}/topics/{topic}/sample", tag = "connections",
    security(("bearer" = [])),
    params(("connection_id" = ConnectionId, Path), ("topic" = String, Path)),
    request_body = SampleRequest,
    responses(
        (status = 200, body = SampleResponse),
        (status = 403, description = "Needs the editor role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection or topic", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cluster could not be used", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn sample(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath((id, topic)): ApiPath<(ConnectionId, String)>,
    ApiJson(req): ApiJson<SampleRequest>,
) -> ApiResult<Json<SampleResponse>> {
    ctx.require(Role::Editor)?;
    let mut v = Validator::new();
    validate_topic(&mut v, "topic", &topic);
    v.finish().map_err(ApiError::Validation)?;
    let row = load(&state, &ctx, id).await?;
    let settings = kafka_settings(&state, &row)?;
    let limit = req.limit.unwrap_or(MAX_SAMPLE) as usize;
    let messages = match kafka::sample(settings, topic, limit, probe_timeout(&state)).await {
        Ok(messages) => messages,
        Err(SampleError::NoSuchTopic(_)) => return Err(ApiError::NotFound("topic")),
        Err(SampleError::Kafka(message)) => {
            return Err(ApiError::Kafka {
                kind: icehouse_api::connections::ConnectionFailureKind::Unreachable,
                message,
            })
        }
        Err(SampleError::Forbidden(message)) => {
            return Err(ApiError::Kafka {
                kind: icehouse_api::connections::ConnectionFailureKind::ForbiddenAddress,
                message,
            })
        }
    };
    let values: Vec<&[u8]> = messages.iter().filter_map(|m| m.value.as_deref()).collect();
    let suggestion = suggest::suggest(&values, req.nested);
    let columns = req.columns.unwrap_or_else(|| suggestion.iter().map(|c| c.column.clone()).collect());
    let problems = check_messages(&Mapping { columns }, &messages, state.config.worker.max_message_bytes)?;
    let misfits = problems.iter().filter(|p| p.is_some()).count();
    let messages = messages
        .into_iter()
        .zip(problems)
        .map(|(m, problem)| {
            let (key, key_cut) = shown(m.key.as_deref());
            let (value, value_cut) = shown(m.value.as_deref());
            SampledMessage {
                partition: m.partition,
                offset: m.offset,
                timestamp: m.timestamp_ms.and_then(chrono::DateTime::from_timestamp_millis),
                key,
                value,
                truncated: key_cut || value_cut,
                value_bytes: m.value.as_ref().map_or(0, Vec::len),
                problem,
            }
        })
        .collect();
    Ok(Json(SampleResponse { messages, suggestion, misfits }))
}

/// Bytes as text for showing (invalid UTF-8 replaced), cut to
/// [`MAX_SAMPLE_TEXT_BYTES`]; whether it was cut.
fn shown(bytes: Option<&[u8]>) -> (Option<String>, bool) {
    let Some(bytes) = bytes else { return (None, false) };
    if bytes.len() <= MAX_SAMPLE_TEXT_BYTES {
        return (Some(String::from_utf8_lossy(bytes).into_owned()), false);
    }
    // Cut where no UTF-8 character is split (valid text stays valid).
    let mut head = &bytes[..MAX_SAMPLE_TEXT_BYTES];
    if let Err(e) = std::str::from_utf8(head) {
        if e.error_len().is_none() {
            head = &head[..e.valid_up_to()];
        }
    }
    (Some(String::from_utf8_lossy(head).into_owned()), true)
}

/// Runs each message through the real decoder of `mapping`: `None` where it
/// would become a row, the dead-letter reason where it would not. An empty
/// mapping (nothing suggested) fits nothing.
fn check_messages(mapping: &Mapping, messages: &[KafkaMessage], max_bytes: usize) -> ApiResult<Vec<Option<String>>> {
    if mapping.columns.is_empty() {
        return Ok(messages.iter().map(|_| Some("no column to map it to".to_string())).collect());
    }
    let mapping = CompiledMapping::compile(mapping).map_err(|e| ApiError::Validation(e.0))?;
    let schema = std::sync::Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&table_schema(&mapping)?).map_err(anyhow::Error::from)?,
    );
    let mut decoder = RowDecoder::new(MessageFormat::Json, &mapping, schema, max_bytes)?;
    Ok(messages.iter().map(|m| decoder.push(m).err().map(|r| format!("{}: {}", r.kind.as_str(), r.message))).collect())
}

async fn load(state: &AppState, ctx: &RequestContext, id: ConnectionId) -> ApiResult<ConnectionRow> {
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row = db::connections::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("connection"))?;
    tx.commit().await?;
    Ok(row)
}

fn probe_timeout(state: &AppState) -> Duration {
    Duration::from_millis(state.config.kafka.probe_timeout_ms)
}

/// The settings with the password unsealed, for the moment of use.
pub fn kafka_settings(state: &AppState, row: &ConnectionRow) -> ApiResult<KafkaSettings> {
    Ok(KafkaSettings {
        egress: state.egress.clone(),
        bootstrap_servers: row.bootstrap_servers.clone(),
        security_protocol: row.protocol()?,
        sasl_mechanism: row.mechanism()?,
        sasl_username: row.sasl_username.clone(),
        sasl_password: row.sasl_password_enc.as_deref().map(|p| state.secrets.open(p)).transpose()?,
    })
}
