//! The coordination protocol: what the control plane and the workers agree
//! on in Postgres, and the only part of the data plane the control plane
//! calls. Workers register and heartbeat ([`lease`]); the scheduler cuts each
//! pipeline's partitions into slices ([`slices`]); a worker claims a slice
//! under a lease with an epoch that only grows, and every side effect of the
//! holder (the table commit, the next offsets ([`offsets`]), its state) is
//! fenced by that epoch in the same transaction. Other work (maintenance,
//! stages, replays, deliveries) will go through the task queue ([`tasks`]),
//! leased and fenced the same way; no worker runs tasks yet.
//!
//! The states and settings stored as text are typed here ([`state`]), so a
//! value Postgres holds but this code does not know is an error, not a
//! silent default.

pub mod lease;
pub mod offsets;
pub mod slices;
pub mod state;
pub mod tasks;

pub use lease::Lease;
pub use state::SliceState;

use icehouse_api::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

/// A transaction for the paths that work across tenants (the workers, the
/// scheduler, log-in): row-level security lets it see every tenant's rows.
pub async fn begin_system(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('icehouse.system', 'on', true)").execute(&mut *tx).await?;
    Ok(tx)
}

/// A transaction that sees one tenant's rows only (row-level security reads
/// `icehouse.tenant_id`).
pub async fn begin_tenant(pool: &PgPool, tenant: TenantId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('icehouse.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await?;
    Ok(tx)
}

/// A pool and whose rows its transactions see. Code that does object-store
/// I/O between database steps (creating a table, changing its schema) is
/// given a scope rather than a transaction, so that it opens a short one for
/// each step and holds no connection while a bucket is waited for.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pool: &'a PgPool,
    tenant: Option<TenantId>,
}

impl<'a> Scope<'a> {
    pub fn system(pool: &'a PgPool) -> Self {
        Self { pool, tenant: None }
    }

    pub fn tenant(pool: &'a PgPool, tenant: TenantId) -> Self {
        Self { pool, tenant: Some(tenant) }
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        match self.tenant {
            None => begin_system(self.pool).await,
            Some(tenant) => begin_tenant(self.pool, tenant).await,
        }
    }
}
