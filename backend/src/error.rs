//! The one error type of the API, rendered as RFC 9457 problem+json.
//!
//! Client errors say exactly what is wrong and with which field; server
//! faults are logged with an error id and answered with that id only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use icehouse_api::connections::ConnectionFailureKind;
use icehouse_api::{FieldError, Problem};
use icehouse_workers::iceberg::{LakeError, LakeErrorKind};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the expected shape.
    #[error("malformed request: {detail}")]
    BadRequest { detail: String, errors: Vec<FieldError> },
    /// The body parsed, but some fields have invalid values.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("unauthenticated: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Missing, or belonging to another tenant (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {detail}")]
    Conflict { field: Option<&'static str>, detail: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Over a rate limit; try again after this many seconds. `what` says
    /// which (`attempts`, `queries running`).
    #[error("too many {what}")]
    TooManyRequests { retry_after_secs: u64, what: &'static str },
    /// The Kafka cluster behind a connection could not be used.
    #[error("kafka: {message}")]
    Kafka { kind: ConnectionFailureKind, message: String },
    /// The warehouse behind a destination (its bucket or folder) could not be used.
    #[error("warehouse: {0}")]
    Warehouse(String),
    #[error("not ready: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Not authenticated"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many requests"),
            Kafka { .. } => (StatusCode::BAD_GATEWAY, "kafka-unavailable", "Kafka cluster unavailable"),
            Warehouse(_) => (StatusCode::BAD_GATEWAY, "warehouse-unavailable", "Warehouse unavailable"),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error"),
        }
    }

    pub fn to_problem(&self, error_id: String) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, errors, kind) = match self {
            ApiError::BadRequest { detail, errors } => (Some(detail.clone()), errors.clone(), None),
            ApiError::Validation(errors) => (
                Some(match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    _ => format!("{} fields are invalid", errors.len()),
                }),
                errors.clone(),
                None,
            ),
            ApiError::Unauthorized(why) => (Some((*why).to_string()), vec![], None),
            ApiError::Forbidden(why) => (Some(why.clone()), vec![], None),
            ApiError::NotFound(what) => (Some(format!("no such {what}")), vec![], None),
            ApiError::Conflict { field, detail } => (
                Some(detail.clone()),
                field.map(|f| vec![FieldError::new(f, detail.clone())]).unwrap_or_default(),
                None,
            ),
            ApiError::Kafka { kind, message } => (Some(message.clone()), vec![], Some(kind.as_str().to_string())),
            ApiError::Warehouse(why) => (Some(why.clone()), vec![], None),
            ApiError::Unavailable(why) => (Some(why.clone()), vec![], None),
            ApiError::TooManyRequests { retry_after_secs, what } => {
                (Some(format!("too many {what}; try again in {retry_after_secs} s")), vec![], None)
            }
            // Internals stay in the log, under the error id.
            ApiError::Internal(_) => (None, vec![], None),
            ApiError::PayloadTooLarge | ApiError::UnsupportedMediaType | ApiError::MethodNotAllowed => {
                (None, vec![], None)
            }
        };
        Problem {
            problem_type: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            error_id,
            errors,
            kind,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error_id = Uuid::now_v7().to_string();
        let (status, ..) = self.parts();
        if let ApiError::Internal(err) = &self {
            tracing::error!(error_id, error = ?err, "internal error");
        } else if status.is_server_error() {
            tracing::warn!(error_id, error = %self, "upstream failure");
        }
        let problem = self.to_problem(error_id);
        let mut response = problem_response(status, &problem, matches!(self, ApiError::Unauthorized(_)));
        if let ApiError::TooManyRequests { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

pub fn problem_response(status: StatusCode, problem: &Problem, challenge: bool) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if challenge {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Iceberg errors: a warehouse that fails is the tenant's to look at (its
/// message names the file and never holds the store's response body); the
/// rest (our catalog database, metadata we cannot read) is an internal fault.
impl From<LakeError> for ApiError {
    fn from(err: LakeError) -> Self {
        if err.kind() == LakeErrorKind::Storage && !err.is_catalog_database() {
            return ApiError::Warehouse(format!("the warehouse could not be reached: {err}"));
        }
        if err.kind() == LakeErrorKind::InvalidMetadata {
            return ApiError::Warehouse(format!("the warehouse holds metadata Icehouse does not read: {err}"));
        }
        ApiError::Internal(err.into())
    }
}

/// Database errors: unique and foreign-key violations become the client errors
/// they are (by constraint name); anything else is an internal fault.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let conflict = |field: &'static str, detail: &str| ApiError::Conflict {
                field: Some(field),
                detail: detail.to_string(),
            };
            match db.constraint() {
                Some("tenants_name_key") => return conflict("tenant_name", "a tenant with this name already exists"),
                Some("users_email_key") => return conflict("email", "an account with this email already exists"),
                Some("memberships_pkey") => return conflict("email", "this user is already a member"),
                Some("invitations_open_key") => {
                    return conflict("email", "an invitation to this address was made at the same moment")
                }
                Some("api_tokens_tenant_name_key") => {
                    return conflict("name", "an API token with this name already exists")
                }
                Some("connections_tenant_name_key") => {
                    return conflict("name", "a connection with this name already exists")
                }
                Some("destinations_tenant_name_key") => {
                    return conflict("name", "a destination with this name already exists")
                }
                Some("pipelines_tenant_name_key") => {
                    return conflict("name", "a pipeline with this name already exists")
                }
                Some("pipelines_table_key") => {
                    return conflict("table_name", "another pipeline already writes to this table")
                }
                Some("pipelines_connection_fkey") => {
                    return if db.message().starts_with("update or delete") {
                        ApiError::Conflict { field: None, detail: "the connection is used by a pipeline".into() }
                    } else {
                        ApiError::field("connection_id", "no such connection")
                    }
                }
                Some("pipelines_destination_fkey") => {
                    return if db.message().starts_with("update or delete") {
                        ApiError::Conflict { field: None, detail: "the destination is used by a pipeline".into() }
                    } else {
                        ApiError::field("destination_id", "no such destination")
                    }
                }
                _ => {}
            }
        }
        ApiError::Internal(err.into())
    }
}
