//! The Icehouse REST API contract.
//!
//! Every type that crosses the wire between the server, the web UI and
//! integrators lives here, with its OpenAPI schema (utoipa) and its validation.
//! The crate has no server dependencies so that it also compiles to wasm32 for
//! the front end; the generated `openapi.json` beside it is the published spec.

pub mod audit;
pub mod auth;
pub mod connections;
pub mod destinations;
pub mod ids;
pub mod invitations;
pub mod notifications;
pub mod pagination;
pub mod pipelines;
pub mod problem;
pub mod query;
pub mod sample;
pub mod status;
pub mod users;
pub mod validate;
pub mod wizard;

pub use ids::*;
pub use problem::{FieldError, Problem};
pub use validate::Validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role within a tenant, from least to most privileged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also manages connections, destinations and pipelines.
    Editor,
    /// Also manages users and API tokens.
    Admin,
    /// Everything, including granting and revoking ownership.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}
