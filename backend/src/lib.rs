//! The Icehouse control plane: the REST API under `/api/v1`, authentication
//! and tenancy, persistence of control objects in Postgres.
//!
//! [`router`] builds the whole HTTP service (routes, OpenAPI spec, tower
//! stack) so tests and benchmarks serve exactly what the binary serves.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod mail;
pub mod query;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod ui;

pub use icehouse_workers::secrets as crypto;

use std::time::Duration;

use axum::http::{header, HeaderName};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub use icehouse_workers::{connect, MIGRATOR};

/// The OpenAPI document generated from the router itself.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::split(None).1
}

/// The whole HTTP service.
pub fn router(state: AppState) -> Router {
    let (api, spec) = api::split(Some(&state));
    let spec_json = serde_json::to_string_pretty(&spec).expect("the OpenAPI spec serializes");
    let x_request_id = HeaderName::from_static("x-request-id");
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    let body_limit = state.config.http.max_body_bytes;

    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec_json) }),
        )
        .fallback_service(ui::router::<()>(&state.config.ui.dist_dir))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(CompressionLayer::new())
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Unavailable("the request took too long and was stopped".into())
                }))
                .layer(tower::timeout::TimeoutLayer::new(timeout)),
        )
        .layer(CatchPanicLayer::custom(|_| panic_response()))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id, tenant_id = tracing::field::Empty)
            }),
        )
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

fn panic_response() -> Response {
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
