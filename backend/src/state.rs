//! Shared state of the HTTP handlers.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::limits::AuthLimits;
use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::crypto::SecretBox;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub secrets: SecretBox,
    pub auth_limits: Arc<AuthLimits>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let (jwt_secret, master_key) = config.keys()?;
        Ok(Self {
            pool,
            jwt: Arc::new(JwtKeys::new(&jwt_secret, config.auth.access_token_ttl_secs)),
            secrets: SecretBox::new(&master_key),
            auth_limits: Arc::new(AuthLimits::new(&config.auth.limits)),
            config: Arc::new(config),
        })
    }
}
