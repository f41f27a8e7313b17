//! The audit log: one entry per mutation, with the object before and after
//! (as the API shows it, so without secrets).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiTokenId, AuditEntryId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: AuditEntryId,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The user who acted (directly or through one of their sessions).
    #[serde(default)]
    pub actor_user_id: Option<UserId>,
    /// The API token that acted, when it was one.
    #[serde(default)]
    pub actor_api_token_id: Option<ApiTokenId>,
    /// E.g. `connection.create`, `member.update`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    #[serde(default)]
    pub before: Option<serde_json::Value>,
    #[serde(default)]
    pub after: Option<serde_json::Value>,
    pub request_id: String,
}
