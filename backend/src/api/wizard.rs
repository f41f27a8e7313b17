//! The wizard's suggested values (`ui.default_*` settings).

use axum::extract::State;
use axum::Json;
use icehouse_api::wizard::WizardDefaults;
use icehouse_api::Role;

use crate::auth::RequestContext;
use crate::error::ApiResult;
use crate::state::AppState;

/// What the new-pipeline wizard prefills: the operator's suggested
/// bootstrap servers and warehouse, if any.
#[utoipa::path(
    get, path = "/api/v1/wizard/defaults", tag = "pipelines", security(("bearer" = [])),
    responses((status = 200, body = WizardDefaults))
)]
pub async fn defaults(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<WizardDefaults>> {
    ctx.require(Role::Viewer)?;
    Ok(Json(state.config.ui.wizard_defaults()))
}
