//! Kafka cluster connections. Passwords are write-only: responses only say
//! whether one is set.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{ConnectionId, FieldError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl].into_iter().find(|p| p.as_str() == s)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Plain, Self::ScramSha256, Self::ScramSha512].into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    /// `host:port` of each seed broker.
    pub bootstrap_servers: Vec<String>,
    pub security_protocol: SecurityProtocol,
    #[serde(default)]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// Whether a SASL password is stored (it is never returned).
    pub sasl_password_set: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionRequest {
    pub name: String,
    pub bootstrap_servers: Vec<String>,
    #[serde(default = "default_protocol")]
    pub security_protocol: SecurityProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_password: Option<String>,
}

fn default_protocol() -> SecurityProtocol {
    SecurityProtocol::Plaintext
}

/// Changes the given fields; absent fields keep their value. A SASL password
/// is kept unless a new one is given.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnectionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<SecurityProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_password: Option<String>,
}

/// An update is checked once merged with what is stored, as [`ConnectionSettings`].
impl Validate for UpdateConnectionRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// The complete settings of a connection, as validated after create or update.
#[derive(Clone, Debug)]
pub struct ConnectionSettings<'a> {
    pub name: &'a str,
    pub bootstrap_servers: &'a [String],
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<&'a str>,
    /// A new password given in this request.
    pub new_sasl_password: Option<&'a str>,
    /// Whether a password will be stored after this request.
    pub sasl_password_set: bool,
}

impl ConnectionSettings<'_> {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.name("name", self.name);
        validate_bootstrap_servers(&mut v, self.bootstrap_servers);
        if self.security_protocol.uses_sasl() {
            v.check(self.sasl_mechanism.is_some(), "sasl_mechanism", "is required with a SASL security protocol");
            match self.sasl_username {
                Some(user) => v.text("sasl_username", user, 255),
                None => v.error("sasl_username", "is required with a SASL security protocol"),
            }
            v.check(self.sasl_password_set, "sasl_password", "is required with a SASL security protocol");
        } else {
            let msg = "is only allowed with SASL_PLAINTEXT or SASL_SSL";
            v.check(self.sasl_mechanism.is_none(), "sasl_mechanism", msg);
            v.check(self.sasl_username.is_none(), "sasl_username", msg);
            v.check(self.new_sasl_password.is_none(), "sasl_password", msg);
        }
        if let Some(password) = self.new_sasl_password {
            v.secret("sasl_password", password);
        }
        v.finish()
    }
}

impl Validate for CreateConnectionRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        ConnectionSettings {
            name: &self.name,
            bootstrap_servers: &self.bootstrap_servers,
            security_protocol: self.security_protocol,
            sasl_mechanism: self.sasl_mechanism,
            sasl_username: self.sasl_username.as_deref(),
            new_sasl_password: self.sasl_password.as_deref(),
            sasl_password_set: self.sasl_password.is_some(),
        }
        .validate()
    }
}

pub const MAX_BOOTSTRAP_SERVERS: usize = 32;

fn validate_bootstrap_servers(v: &mut Validator, servers: &[String]) {
    if servers.is_empty() {
        v.error("bootstrap_servers", "must list at least one host:port");
    } else if servers.len() > MAX_BOOTSTRAP_SERVERS {
        v.error("bootstrap_servers", format!("must list at most {MAX_BOOTSTRAP_SERVERS} servers"));
    }
    for (i, server) in servers.iter().take(MAX_BOOTSTRAP_SERVERS).enumerate() {
        if let Err(message) = parse_host_port(server) {
            v.error(format!("bootstrap_servers[{i}]"), message);
        }
    }
}

/// Checks `host:port` (`[v6addr]:port` for IPv6) and returns its parts.
pub fn parse_host_port(server: &str) -> Result<(&str, u16), String> {
    let bad = || format!("`{server}` is not host:port (for example broker-1.example.com:9092)");
    if server.len() > 255 {
        return Err("must be at most 255 characters".into());
    }
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(bad());
        }
        (host, port)
    } else {
        let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err(bad());
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => Ok((host, p)),
        _ => Err(format!("`{server}` has no valid port (1 to 65535)")),
    }
}

/// The outcome of a live connection test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConnectionTestResult {
    /// The cluster answered.
    Ok { brokers: Vec<BrokerInfo>, topics: Vec<TopicInfo>, elapsed_ms: u64 },
    /// The cluster could not be used.
    Failed { failure: ConnectionFailure, elapsed_ms: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionFailure {
    pub kind: ConnectionFailureKind,
    /// What went wrong, in words meant for a person.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionFailureKind {
    /// No broker could be reached (refused, unresolvable, network down).
    Unreachable,
    /// A broker answered but refused the credentials.
    AuthFailed,
    /// The TLS handshake failed.
    Tls,
    /// Brokers were reached but did not answer in time.
    Timeout,
    /// A bootstrap server or a broker the cluster advertises is an address
    /// this server's egress policy refuses (loopback, private, link-local, …).
    ForbiddenAddress,
}

impl ConnectionFailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionFailureKind::Unreachable => "unreachable",
            ConnectionFailureKind::AuthFailed => "auth_failed",
            ConnectionFailureKind::Tls => "tls",
            ConnectionFailureKind::Timeout => "timeout",
            ConnectionFailureKind::ForbiddenAddress => "forbidden_address",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("localhost:9092"), Ok(("localhost", 9092)));
        assert_eq!(parse_host_port("b-1.kafka.eu-west-1.amazonaws.com:9094").unwrap().1, 9094);
        assert_eq!(parse_host_port("10.0.0.1:1"), Ok(("10.0.0.1", 1)));
        assert_eq!(parse_host_port("[::1]:9092"), Ok(("::1", 9092)));
        for bad in [
            "",
            "localhost",
            ":9092",
            "host:",
            "host:0",
            "host:65536",
            "host:+1",
            "ho st:1",
            "http://host:9092",
            "-a:1",
            "a..b:1",
            "[::1]9092",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sasl_needs_credentials() {
        let req = CreateConnectionRequest {
            name: "c".into(),
            bootstrap_servers: vec!["k:9092".into()],
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
        };
        let fields: Vec<_> = req.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["sasl_mechanism", "sasl_username", "sasl_password"]);
    }
}
