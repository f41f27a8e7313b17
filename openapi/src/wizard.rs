//! What the new-pipeline wizard offers before the user types anything.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Suggested values for a first pipeline, set by the operator (`ui.*`
/// settings). `icehouse dev` suggests a local warehouse, and `scripts/dev.sh`
/// the demo broker it starts; a shared server suggests nothing by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WizardDefaults {
    /// Bootstrap servers to prefill for a new connection (empty: none).
    #[serde(default)]
    pub bootstrap_servers: Vec<String>,
    /// A warehouse URI to prefill for a new destination.
    #[serde(default)]
    pub warehouse_uri: Option<String>,
}
