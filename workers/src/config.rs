//! The data plane's configuration: the database, the secrets key and the
//! worker's own settings, which `icehouse-worker` reads and the control plane
//! embeds in its own (`backend/src/config.rs`). Every process loads its
//! settings the same way, with [`load`]: defaults → optional TOML file → the
//! `ICEHOUSE__…` environment variables (`ICEHOUSE__DATABASE__URL` sets
//! `database.url`); sections a process does not know are ignored.

use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// What `icehouse-worker` reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub secrets: SecretsConfig,
    pub worker: WorkerConfig,
    pub egress: EgressConfig,
    pub dead_letter: DeadLetterConfig,
}

/// What a dead-letter row keeps of a rejected message.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(default)]
pub struct DeadLetterConfig {
    /// The key, the value, and the headers' names and values together are
    /// kept up to this many bytes each; a row that lost any says so (`truncated`, with the original
    /// `key_bytes` and `value_bytes`).
    pub max_value_bytes: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self { max_value_bytes: 1024 * 1024 }
    }
}

/// Where connections made for a tenant may go (see [`crate::egress`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EgressConfig {
    /// CIDR ranges, comma-separated, that may be connected to although they
    /// are not public (loopback, private, link-local, …). Unset: `serve`
    /// and `icehouse-worker` allow none, `dev` loopback and private networks.
    pub allow: Option<String>,
}

impl EgressConfig {
    /// `icehouse dev`: one person's machine, whose brokers and buckets are local.
    pub fn for_dev(&mut self) {
        self.allow.get_or_insert_with(|| crate::egress::DEV_ALLOW.to_string());
    }

    /// The policy, refusing the server's own Postgres (both logins' hosts) too.
    pub fn policy(&self, database: &DatabaseConfig) -> anyhow::Result<crate::egress::EgressPolicy> {
        let urls: Vec<&str> = std::iter::once(database.url.as_str()).chain(database.tenant_url.as_deref()).collect();
        crate::egress::EgressPolicy::new(self.allow.as_deref().unwrap_or(""), &urls)
    }
}

/// Loads a process's settings: defaults, then `file` (if any), then `extra`
/// (the dev key file, if any), then the environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>, extra: Option<&Path>) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    if let Some(extra) = extra {
        builder = builder.add_source(config::File::from(extra).required(false));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("ICEHOUSE").prefix_separator("__").separator("__").try_parsing(true),
    );
    builder.build().context("reading configuration")?.try_deserialize().context("invalid configuration")
}

impl Config {
    pub fn load(file: Option<&Path>, extra: Option<&Path>) -> anyhow::Result<Config> {
        load(file, extra)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// The login of the data plane and of code that works across tenants.
    pub url: String,
    /// The login of requests made for a tenant, a member of the role
    /// `icehouse_tenant` (which row-level security never lets act as
    /// system code). Required by `serve`; `dev` falls back to `url`.
    pub tenant_url: Option<String>,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecretsConfig {
    /// AES-256-GCM key for secrets at rest, base64 of exactly 32 bytes.
    pub master_key: Option<String>,
}

impl SecretsConfig {
    /// The key, or an error that says how to set it.
    pub fn master_key(&self) -> anyhow::Result<[u8; 32]> {
        let Some(master) = &self.master_key else {
            bail!("secrets.master_key is not set (ICEHOUSE__SECRETS__MASTER_KEY: base64 of 32 random bytes)");
        };
        base64::engine::general_purpose::STANDARD
            .decode(master.trim())
            .context("secrets.master_key is not base64")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("secrets.master_key must be exactly 32 bytes"))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Run ingestion workers inside the API process (`dev` always does).
    pub in_process: bool,
    /// Pipelines one worker runs at most.
    pub max_pipelines: usize,
    /// A lease not renewed for this long is free to claim by another worker.
    pub lease_ttl_secs: u64,
    /// How often a worker renews its leases and looks for work.
    pub heartbeat_ms: u64,
    /// Larger messages go to the dead-letter table as `too_large`.
    pub max_message_bytes: usize,
    /// A batch is committed at this many messages even before its flush interval.
    pub batch_max_messages: usize,
    /// …or at this many bytes of messages (keys, values and headers).
    pub batch_max_bytes: usize,
    /// A commit (data files, metadata, the pointer and offsets) still running
    /// after this long is given up, and the slice starts again: a bucket that
    /// stops answering holds neither a pause nor a shutdown for ever.
    pub commit_timeout_secs: u64,
    /// A topic the broker says has more partitions than this is refused (a
    /// hostile broker could otherwise have a million slices planned).
    pub max_topic_partitions: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            in_process: false,
            max_pipelines: 32,
            lease_ttl_secs: 10,
            heartbeat_ms: 1000,
            max_message_bytes: 1024 * 1024,
            batch_max_messages: 250_000,
            batch_max_bytes: 64 * 1024 * 1024,
            commit_timeout_secs: 120,
            max_topic_partitions: crate::kafka::MAX_TOPIC_PARTITIONS,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://icehouse:icehouse@127.0.0.1:54329/icehouse".into(),
            tenant_url: None,
            max_connections: 32,
        }
    }
}
