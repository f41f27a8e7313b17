//! The REST API under `/api/v1`, one file per resource. Each route is
//! registered together with its OpenAPI entry, so the spec cannot drift
//! from the router.

mod api_tokens;
mod audit;
mod auth;
mod connections;
mod dead_letters;
mod destinations;
mod health;
mod invitations;
mod notifications;
mod passwords;
mod pipelines;
mod query;
mod signup;
mod spec;
pub(crate) mod tables;
mod users;
mod wizard;

use axum::middleware::from_fn_with_state;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::authenticate;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Icehouse API",
        description = "Kafka → Apache Iceberg ingestion, as a multi-tenant service. \
                       Errors are RFC 9457 problem+json bodies.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-up, log-in and sessions"),
        (name = "users", description = "Members of the tenant, their roles, and invitations"),
        (name = "api-tokens", description = "Long-lived tokens for integrators"),
        (name = "connections", description = "Kafka clusters"),
        (name = "destinations", description = "Iceberg warehouses"),
        (name = "pipelines", description = "Topic → table ingestion"),
        (name = "tables", description = "The Iceberg tables and how to read them"),
        (name = "audit", description = "Who changed what"),
        (name = "notifications", description = "Pipeline failures, for admins"),
        (name = "query", description = "Read-only SQL over the tenant's tables"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token from /auth/login or an API token"))
                    .build(),
            ),
        );
    }
}

/// The routes and the spec they serve, with the errors every route shares
/// added to it ([`spec::CommonProblems`]: it needs the merged paths, so it
/// runs here rather than as a modifier of [`ApiDoc`]).
pub fn split(state: Option<&AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = routes(state).split_for_parts();
    spec::CommonProblems.modify(&mut openapi);
    (router, openapi)
}

/// All routes with their spec. With a state, the protected routes are put
/// behind [`authenticate`]; without one (spec generation) they are not served.
fn routes(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(signup::signup))
        .routes(routes!(signup::confirm))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(passwords::request_reset))
        .routes(routes!(passwords::confirm_reset))
        // Public: a bearer token, when sent, says which account joins.
        .routes(routes!(invitations::accept));

    let mut protected = OpenApiRouter::new()
        .routes(routes!(auth::me))
        .routes(routes!(passwords::change))
        .routes(routes!(users::list))
        .routes(routes!(invitations::list, invitations::create))
        .routes(routes!(invitations::withdraw))
        .routes(routes!(users::update, users::remove))
        .routes(routes!(api_tokens::list, api_tokens::create))
        .routes(routes!(api_tokens::delete))
        .routes(routes!(connections::list, connections::create))
        .routes(routes!(connections::get, connections::update, connections::delete))
        .routes(routes!(connections::test))
        .routes(routes!(connections::test_unsaved))
        .routes(routes!(connections::sample))
        .routes(routes!(connections::topics))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(destinations::get, destinations::update, destinations::delete))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(pipelines::get, pipelines::update, pipelines::delete))
        .routes(routes!(pipelines::pause))
        .routes(routes!(pipelines::resume))
        .routes(routes!(pipelines::status))
        .routes(routes!(dead_letters::list))
        .routes(routes!(query::run))
        .routes(routes!(tables::list))
        .routes(routes!(tables::get))
        .routes(routes!(audit::list))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::mark_read))
        .routes(routes!(wizard::defaults));
    if let Some(state) = state {
        protected = protected.route_layer(from_fn_with_state(state.clone(), authenticate));
    }

    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(public).merge(protected)
}
