//! Persistence of control objects: plain async functions over a transaction.
//!
//! Every transaction states whose rows it may see: [`begin_tenant`] sets
//! `icehouse.tenant_id` for row-level security, [`begin_system`] is for the
//! few paths that must work across tenants (log-in, token lookup, sign-up).

pub mod audit;
pub mod connections;
pub mod destinations;
pub mod invitations;
pub mod notifications;
pub mod passwords;
pub mod pipelines;
pub mod prune;
pub mod signups;
pub mod tokens;
pub mod users;

use icehouse_api::pagination::{ListParams, DEFAULT_LIMIT, MAX_LIMIT};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::error::ApiError;

pub type Tx = Transaction<'static, Postgres>;

pub use icehouse_workers::coord::{begin_system, begin_tenant};

/// A validated page request: fetch `limit + 1` rows after `after` to know
/// whether there is a next page.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: i64,
}

impl PageRequest {
    pub fn from_params(params: &ListParams) -> Result<Self, ApiError> {
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::field("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let after = match &params.cursor {
            None => None,
            Some(c) => Some(
                Uuid::parse_str(c).map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
            ),
        };
        Ok(Self { after, limit: limit as i64 })
    }

    /// Cuts the extra row and returns the cursor of the next page.
    pub fn finish<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(|r| id(r).to_string()) } else { None };
        (rows, next)
    }
}
