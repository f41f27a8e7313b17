//! Shared state of the HTTP handlers.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::limits::AuthLimits;
use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::mail::Mailer;
use crate::query::QuerySlots;
use icehouse_workers::egress::EgressPolicy;

#[derive(Clone)]
pub struct AppState {
    /// Requests made for a tenant (`database.tenant_url`): a login in the
    /// `icehouse_tenant` role, which row-level security holds to the tenant
    /// its transaction names (`db::begin_tenant`).
    pub pool: PgPool,
    /// Code that works across tenants (log-in, sign-up, token lookup,
    /// invitations, password resets; `db::begin_system`).
    pub system: PgPool,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub secrets: SecretBox,
    pub auth_limits: Arc<AuthLimits>,
    pub mailer: Arc<Mailer>,
    /// `http.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    pub query_slots: Arc<QuerySlots>,
    /// Where connections made for a tenant may go (`egress.*`).
    pub egress: Arc<EgressPolicy>,
}

impl AppState {
    pub fn new(system: PgPool, pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let (jwt_secret, master_key) = config.keys()?;
        let public_url = config.http.public_url.clone().unwrap_or_else(|| format!("http://{}", config.http.bind));
        Ok(Self {
            mailer: Arc::new(Mailer::new(&config.mail, &public_url)?),
            trusted_proxies: Arc::new(config.http.trusted_proxy_ranges()?),
            egress: Arc::new(config.egress.policy(&config.database)?),
            query_slots: Arc::new(QuerySlots::new(config.query.max_concurrent, config.query.max_concurrent_per_tenant)),
            pool,
            system,
            jwt: Arc::new(JwtKeys::new(&jwt_secret, config.auth.access_token_ttl_secs)),
            secrets: SecretBox::new(&master_key),
            auth_limits: Arc::new(AuthLimits::new(&config.auth.limits)),
            config: Arc::new(config),
        })
    }
}
