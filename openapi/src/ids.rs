//! Typed identifiers. Each wraps a UUID so that a pipeline id can never be
//! passed where a connection id is expected; they serialize as plain UUID strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )+};
}

typed_id!(
    /// A tenant: the unit of isolation; every object belongs to exactly one.
    TenantId,
    /// A person who can log in; may be a member of several tenants.
    UserId,
    /// A long-lived API token for integrators.
    ApiTokenId,
    /// A Kafka cluster connection.
    ConnectionId,
    /// An Iceberg warehouse destination.
    DestinationId,
    /// A topic → table ingestion pipeline.
    PipelineId,
    /// An audit log entry.
    AuditEntryId,
    /// An invitation to join a tenant.
    InvitationId,
);

/// The text was not a UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid id (expected a UUID)")
    }
}

impl std::error::Error for InvalidId {}
