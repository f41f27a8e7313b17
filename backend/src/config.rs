//! The control plane's configuration: HTTP, auth, the UI, the query service,
//! the destinations policy and the Kafka probe, plus the data plane's
//! sections (database, secrets, worker; `icehouse_workers::config`) for the
//! in-process worker and the scheduler. Loaded once, the same way as every
//! process's ([`icehouse_workers::config::load`]).
//!
//! The two keys (JWT signing, secrets encryption) have no defaults: `serve`
//! refuses to start without them, `dev` generates them once into a local,
//! git-ignored file so that a restart keeps sessions and stored secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
pub use icehouse_workers::config::{DatabaseConfig, DeadLetterConfig, EgressConfig, SecretsConfig, WorkerConfig};
use rand::RngCore;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub secrets: SecretsConfig,
    pub kafka: KafkaConfig,
    pub worker: WorkerConfig,
    pub ui: UiConfig,
    pub query: QueryConfig,
    pub destinations: DestinationsConfig,
    pub audit: AuditConfig,
    pub mail: MailConfig,
    pub egress: EgressConfig,
    pub dead_letter: DeadLetterConfig,
}

/// Outgoing e-mail (invitations, sign-up confirmations, password resets)
/// through an SMTP server the operator runs. Without `smtp_host` no mail is
/// sent: invitation links are only shown to the admin who made them, and
/// verified sign-up and password reset answer 503.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct MailConfig {
    pub smtp_host: Option<String>,
    /// Unset: 587, or 465 with `tls = "tls"`.
    pub smtp_port: Option<u16>,
    /// `starttls` (the default: upgrade, and refuse a server that cannot),
    /// `tls` (TLS from the first byte, port 465) or `none` (plain text, for
    /// a relay on loopback).
    pub tls: MailTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Bound on one delivery (connect, hand-over, reply).
    pub timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    Starttls,
    Tls,
    None,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: None,
            tls: MailTls::Starttls,
            username: None,
            password: None,
            from: "Icehouse <icehouse@localhost>".into(),
            timeout_secs: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// Audit entries older than this are pruned (hourly, by the scheduler); 0 keeps them all.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 365 }
    }
}

/// Where tenants may point their destinations, checked when one is created
/// or changed. A shared server must not let a tenant write into the server's
/// own disk or reach storage with the server's own cloud credentials.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DestinationsConfig {
    /// `file://` warehouses must lie inside this folder. Unset: `serve`
    /// refuses `file://` warehouses, `dev` allows them anywhere.
    pub local_root: Option<PathBuf>,
    /// Whether an `s3://` destination may come without keys and so use this
    /// process's own AWS credentials (environment, profile, instance role).
    /// Unset: `serve` says no, `dev` says yes.
    pub allow_host_credentials: Option<bool>,
}

impl DestinationsConfig {
    /// `icehouse dev`: one person's machine, their own disk and credentials.
    pub fn for_dev(&mut self) {
        self.local_root.get_or_insert_with(|| PathBuf::from("/"));
        self.allow_host_credentials.get_or_insert(true);
    }
}

/// Bounds of `POST /api/v1/query` (and the dead-letter view, which runs on it).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct QueryConfig {
    /// A query is cancelled after this long.
    pub timeout_ms: u64,
    /// Memory one query may hold in operators (sorts, joins, aggregates),
    /// and in its collected result, before it fails.
    pub memory_limit_mb: usize,
    /// Queries running at once on this server; past it, 429.
    pub max_concurrent: usize,
    /// …and of one tenant.
    pub max_concurrent_per_tenant: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self { timeout_ms: 20_000, memory_limit_mb: 512, max_concurrent: 8, max_concurrent_per_tenant: 2 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Upper bound on the handling time of one request.
    pub request_timeout_secs: u64,
    pub max_body_bytes: usize,
    /// A client has this long to send a request's headers (slowloris).
    pub header_read_timeout_secs: u64,
    /// Connections open at once; past it new ones wait until one closes.
    pub max_connections: u32,
    /// Connections the kernel holds for `accept` (capped by
    /// `net.core.somaxconn`); a burst past it is dropped by the kernel.
    pub listen_backlog: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client: CIDR
    /// ranges or addresses, comma separated (`10.0.0.0/8, 192.0.2.7`).
    /// Empty: the TCP peer is the client, and the header is ignored.
    pub trusted_proxies: String,
    /// The address users reach the server at, for links in e-mails
    /// (`https://icehouse.example.com`). Unset: `http://` and the bound address.
    pub public_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// HS256 signing key for access tokens, base64, at least 32 bytes.
    pub jwt_secret: Option<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// The longest a session lives, however often it is refreshed.
    pub session_max_age_secs: u64,
    /// Days an API token lives when its request does not say (every token expires).
    pub api_token_ttl_days: u32,
    pub limits: AuthLimitsConfig,
    /// Who may create a tenant. Unset: `serve` verifies the address first,
    /// `dev` lets anyone in at once.
    pub signup: Option<SignupMode>,
    /// How long an invitation link works.
    pub invitation_ttl_hours: u32,
    /// How long a password-reset link works.
    pub password_reset_ttl_minutes: u32,
    /// How long a sign-up confirmation link works.
    pub signup_ttl_hours: u32,
}

/// How `POST /api/v1/auth/signup` treats a new tenant's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// The tenant and account exist at once and the answer is a session.
    /// It says when an address already has an account: for one person's
    /// machine, or a server whose users are known.
    Open,
    /// The answer is always "check your e-mail"; the tenant is made when the
    /// e-mailed link is opened, and an address that has an account gets a
    /// note instead. Nobody learns which addresses have accounts.
    Verified,
}

impl AuthConfig {
    /// `icehouse dev`: sign-up without e-mail.
    pub fn for_dev(&mut self) {
        self.signup.get_or_insert(SignupMode::Open);
    }

    pub fn signup_mode(&self) -> SignupMode {
        self.signup.unwrap_or(SignupMode::Verified)
    }
}

/// How many log-in, sign-up, refresh, reset and invitation-accept attempts are let through: per
/// client address (IPv6 by /64) and per account, each a burst that refills
/// at a steady rate. Past them the answer is 429 with `Retry-After`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AuthLimitsConfig {
    pub per_address_burst: u32,
    pub per_address_per_minute: u32,
    pub per_account_burst: u32,
    pub per_account_per_hour: u32,
    /// Mails to one address (sign-up, reset, invitations).
    pub mail_per_recipient_burst: u32,
    pub mail_per_recipient_per_hour: u32,
    /// Invitation mails one tenant sends.
    pub mail_per_tenant_burst: u32,
    pub mail_per_tenant_per_hour: u32,
}

impl Default for AuthLimitsConfig {
    fn default() -> Self {
        Self {
            per_address_burst: 20,
            per_address_per_minute: 20,
            per_account_burst: 50,
            per_account_per_hour: 100,
            mail_per_recipient_burst: 5,
            mail_per_recipient_per_hour: 10,
            mail_per_tenant_burst: 20,
            mail_per_tenant_per_hour: 50,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Bound on a connection test or topic listing.
    pub probe_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            max_connections: 4096,
            listen_backlog: 4096,
            trusted_proxies: String::new(),
            public_url: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_max_age_secs: 90 * 24 * 3600,
            api_token_ttl_days: 90,
            limits: AuthLimitsConfig::default(),
            signup: None,
            invitation_ttl_hours: 7 * 24,
            password_reset_ttl_minutes: 60,
            signup_ttl_hours: 24,
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self { probe_timeout_ms: 5000 }
    }
}

/// The web UI's files, built by `scripts/build-frontend.sh` and served at `/`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UiConfig {
    pub dist_dir: PathBuf,
    /// Bootstrap servers the wizard prefills for a new connection, comma
    /// separated (`scripts/dev.sh` sets its demo broker).
    pub default_bootstrap_servers: Option<String>,
    /// A warehouse URI the wizard prefills for a new destination.
    pub default_warehouse_uri: Option<String>,
}

impl UiConfig {
    /// `icehouse dev`: a local warehouse beside the build cache
    /// (`$ICEHOUSE_CACHE_DIR`, else `~/.cache/icehouse`), unless one is set.
    pub fn for_dev(&mut self) {
        if self.default_warehouse_uri.is_none() {
            let cache = std::env::var_os("ICEHOUSE_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/icehouse")));
            self.default_warehouse_uri = cache.map(|c| format!("file://{}", c.join("warehouse").display()));
        }
    }

    pub fn wizard_defaults(&self) -> icehouse_api::wizard::WizardDefaults {
        let servers = self.default_bootstrap_servers.as_deref().unwrap_or_default();
        icehouse_api::wizard::WizardDefaults {
            bootstrap_servers: servers.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            warehouse_uri: self.default_warehouse_uri.clone().filter(|u| !u.trim().is_empty()),
        }
    }
}

impl Default for UiConfig {
    /// `frontend/dist` of the source tree this binary was built from, so
    /// `icehouse dev` and the tests find the UI from any working directory.
    fn default() -> Self {
        let backend = Path::new(env!("CARGO_MANIFEST_DIR"));
        Self {
            dist_dir: backend.parent().unwrap_or(backend).join("frontend").join("dist"),
            default_bootstrap_servers: None,
            default_warehouse_uri: None,
        }
    }
}

impl HttpConfig {
    /// [`HttpConfig::trusted_proxies`], parsed.
    pub fn trusted_proxy_ranges(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| format!("http.trusted_proxies: `{p}` is not an address or a CIDR range"))
            })
            .collect()
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then `extra` (the dev key file,
    /// if any), then the environment.
    pub fn load(file: Option<&Path>, extra: Option<&Path>) -> anyhow::Result<Config> {
        icehouse_workers::config::load(file, extra)
    }

    /// The keys, or an error that says which one is missing.
    pub fn keys(&self) -> anyhow::Result<(Vec<u8>, [u8; 32])> {
        Ok((self.jwt_secret()?, self.master_key()?))
    }

    pub fn jwt_secret(&self) -> anyhow::Result<Vec<u8>> {
        let Some(jwt) = &self.auth.jwt_secret else {
            bail!("auth.jwt_secret is not set (ICEHOUSE__AUTH__JWT_SECRET: base64 of at least 32 random bytes)");
        };
        let jwt =
            base64::engine::general_purpose::STANDARD.decode(jwt.trim()).context("auth.jwt_secret is not base64")?;
        if jwt.len() < 32 {
            bail!("auth.jwt_secret must be at least 32 bytes");
        }
        Ok(jwt)
    }

    pub fn master_key(&self) -> anyhow::Result<[u8; 32]> {
        self.secrets.master_key()
    }
}

/// Makes sure the dev key file exists (0600), generating fresh keys once.
pub fn ensure_dev_keys(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut jwt = [0u8; 48];
    let mut master = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut jwt);
    rand::rngs::OsRng.fill_bytes(&mut master);
    let text = format!(
        "# Generated by `icehouse dev` on first run. Keep it out of version control.\n\
         [auth]\njwt_secret = \"{}\"\n\n[secrets]\nmaster_key = \"{}\"\n",
        b64.encode(jwt),
        b64.encode(master)
    );
    write_private(path, &text).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated development keys");
    Ok(path.to_path_buf())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
