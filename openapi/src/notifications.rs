//! Notifications for admins: pipeline failures, newest first.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::PipelineId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The pipeline's state changed into `failing`.
    PipelineFailing,
    /// The pipeline hit an error (a new one, not a repeat of the last).
    PipelineError,
    /// The pipeline is healthy again after failing.
    PipelineRecovered,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: i64,
    pub kind: NotificationKind,
    #[serde(default)]
    pub pipeline_id: Option<PipelineId>,
    #[serde(default)]
    pub pipeline_name: Option<String>,
    pub message: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Whether the calling user has marked it read.
    pub read: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub items: Vec<Notification>,
    /// Unread notifications of the calling user (all of them, not only this page).
    pub unread: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Mark read everything up to and including this id; all when absent.
    #[serde(default)]
    pub up_to: Option<i64>,
}

impl crate::Validate for MarkReadRequest {
    fn validate(&self) -> Result<(), Vec<crate::FieldError>> {
        let mut v = crate::validate::Validator::new();
        v.check(self.up_to.is_none_or(|id| id >= 0), "up_to", "must not be negative");
        v.finish()
    }
}
