//! Read-only SQL over the tenant's tables.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DEFAULT_QUERY_ROWS: u32 = 1_000;
pub const MAX_QUERY_ROWS: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One `SELECT` (or `WITH … SELECT`). Tables are named
    /// `namespace.table`; every table of the tenant's destinations is visible.
    pub sql: String,
    /// The most rows returned, 1 to 10,000 (default 1,000).
    #[serde(default)]
    pub max_rows: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryResult {
    pub columns: Vec<QueryColumn>,
    /// Rows as arrays in column order; values as JSON (decimals and 64-bit
    /// integers outside ±2^53 as strings, timestamps as ISO-8601 strings).
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when the result had more rows than `max_rows`.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryColumn {
    pub name: String,
    /// The Arrow data type, e.g. `Int64` or `Timestamp(Microsecond, Some("+00:00"))`.
    pub data_type: String,
}

/// The longest SQL text accepted.
pub const MAX_SQL_LEN: usize = 100_000;

impl crate::Validate for QueryRequest {
    fn validate(&self) -> Result<(), Vec<crate::FieldError>> {
        let mut v = crate::validate::Validator::new();
        if self.sql.trim().is_empty() {
            v.error("sql", "must not be empty");
        } else if self.sql.len() > MAX_SQL_LEN {
            v.error("sql", format!("must be at most {MAX_SQL_LEN} bytes"));
        }
        if let Some(rows) = self.max_rows {
            v.check(
                (1..=MAX_QUERY_ROWS).contains(&rows),
                "max_rows",
                format!("must be between 1 and {MAX_QUERY_ROWS}"),
            );
        }
        v.finish()
    }
}
