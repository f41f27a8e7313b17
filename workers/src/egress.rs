//! The egress policy: which addresses Icehouse connects to on a tenant's
//! behalf (Kafka brokers, the brokers a cluster advertises, S3 endpoints).
//!
//! A tenant names hosts; what is checked is every address a name resolves
//! to. Loopback, private, link-local, shared (CGNAT), multicast, reserved
//! and unspecified addresses are refused unless the operator allows a range
//! (`egress.allow`, CIDRs), and the server's own Postgres is refused always.
//! A name with one refused address is refused as a whole: the client may
//! pick any of them.
//!
//! Limits, stated: bootstrap servers and S3 endpoints are checked before a
//! client is created, so nothing connects to a refused one. Advertised
//! brokers are checked in every metadata the data plane reads (before any
//! partition is sampled, assigned or fetched, and every few seconds while a
//! slice runs), and a refused one makes Icehouse refuse the cluster; but
//! librdkafka follows a cluster's metadata by itself, and rust-rdkafka 0.39
//! offers no hook before it connects (librdkafka's `resolve_cb` and
//! `connect_cb` are not reachable through it), so it may already have opened
//! a connection to an advertised address and sent its first request. The
//! Kafka and S3 clients also resolve names again themselves: a name whose
//! DNS answer changes between our look and theirs (rebinding) gets past the
//! check. The deployment's own network policy is the wall behind this one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use ipnet::IpNet;

/// A refused address, with the policy that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "forbidden_address: {target} resolves to {addr}, {why}, which this server's egress policy refuses \
     (an operator can allow a range with egress.allow)"
)]
pub struct Forbidden {
    /// What the tenant named (`host:port`, or an endpoint URL).
    pub target: String,
    pub addr: IpAddr,
    pub why: &'static str,
}

/// Why a target could not be checked or is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The name does not resolve (the client would fail the same way).
    #[error("{target} could not be resolved: {reason}")]
    Unresolved { target: String, reason: String },
    /// Not something that can be checked (and so not connected to).
    #[error("{target} is not a valid address: {reason}")]
    Invalid { target: String, reason: String },
}

#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
    /// Always refused, allowed range or not: the server's own Postgres.
    own: Vec<SocketAddr>,
}

/// The ranges `icehouse dev` allows: loopback and private networks.
pub const DEV_ALLOW: &str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

impl EgressPolicy {
    /// The policy of `allow` (comma-separated CIDRs), refusing the server's
    /// own Postgres (what each of `database_urls` names) in any case.
    pub fn new(allow: &str, database_urls: &[&str]) -> anyhow::Result<EgressPolicy> {
        use anyhow::Context;
        let allow = allow
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<IpNet>().with_context(|| format!("egress.allow: `{s}` is not a CIDR range")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let own = database_urls.iter().flat_map(|url| postgres_addresses(url)).collect();
        Ok(EgressPolicy { allow, own })
    }

    /// Whether `addr` may be connected to; `Err` says why not.
    pub fn check(&self, addr: SocketAddr) -> Result<(), &'static str> {
        let ip = canonical(addr.ip());
        if self.own.iter().any(|own| canonical(own.ip()) == ip && own.port() == addr.port()) {
            return Err("this server's own database");
        }
        match special(ip) {
            Some(_) if self.allow.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Resolves `host:port` and checks every address (a blocking lookup:
    /// call it off the async threads).
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), EgressError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| EgressError::Unresolved { target: target.clone(), reason: e.to_string() })?
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolved { target, reason: "no addresses".into() });
        }
        for addr in addrs {
            if let Err(why) = self.check(addr) {
                return Err(Forbidden { target, addr: canonical(addr.ip()), why }.into());
            }
        }
        Ok(())
    }

    /// Checks a Kafka `host:port` (as in `bootstrap.servers`; a missing port is 9092).
    pub fn check_server(&self, server: &str) -> Result<(), EgressError> {
        let server = server.trim();
        let server = server.split_once("://").map_or(server, |(_, rest)| rest);
        let (host, port) = match server.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
                (host, port.parse().unwrap_or(0))
            }
            _ => (server, 9092),
        };
        self.check_host(host, port)
    }

    /// Checks a URL's host (an S3 endpoint) by what it resolves to.
    pub fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let (host, port) = url_host(url)?;
        self.check_host(&host, port).map_err(|e| match e {
            EgressError::Forbidden(f) => Forbidden { target: url.to_string(), ..f }.into(),
            other => other,
        })
    }

    /// Checks a URL's host without a lookup: an IP literal is checked, a
    /// name passes (for paths that must not block; names are checked by
    /// [`EgressPolicy::check_url`] where a lookup may run).
    pub fn check_url_literal(&self, url: &str) -> Result<(), EgressError> {
        let (host, port) = url_host(url)?;
        match host.parse::<IpAddr>() {
            Ok(ip) => self
                .check(SocketAddr::new(ip, port))
                .map_err(|why| Forbidden { target: url.to_string(), addr: canonical(ip), why }.into()),
            Err(_) => Ok(()),
        }
    }
}

/// The host and port of an http:// or https:// URL; anything this strict
/// parser does not take is refused (a laxer one downstream might read it as
/// another host).
fn url_host(url: &str) -> Result<(String, u16), EgressError> {
    let invalid = |reason: &str| EgressError::Invalid { target: url.to_string(), reason: reason.into() };
    let parsed: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let host = parsed.host().ok_or_else(|| invalid("no host"))?;
    let port = match (parsed.port_u16(), parsed.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        _ => return Err(invalid("not an http:// or https:// URL")),
    };
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

/// The addresses of the server's own Postgres (what `database.url` names).
fn postgres_addresses(database_url: &str) -> Vec<SocketAddr> {
    use std::str::FromStr;
    let Ok(options) = sqlx::postgres::PgConnectOptions::from_str(database_url) else { return vec![] };
    let host = options.get_host().to_string();
    if host.starts_with('/') {
        return vec![]; // a Unix socket: nothing to reach over TCP
    }
    (host.as_str(), options.get_port()).to_socket_addrs().map(Iterator::collect).unwrap_or_default()
}

/// An IPv4 address carried in IPv6 (mapped, NAT64, 6to4) is checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8));
    // NAT64 (well-known and local-use prefixes) and the old IPv4-compatible form.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return embedded(s[6], s[7]);
    }
    if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return embedded(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]);
    }
    ip
}

/// What kind of non-public address `ip` is, if it is one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (CGNAT) address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if v4.is_broadcast()
                || a >= 240
                || (a, b, v4.octets()[2]) == (192, 0, 0)
                || (a == 198 && (b & 0xfe) == 18)
            {
                Some("a reserved address")
            } else if matches!(v4.octets(), [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]) {
                Some("a documentation address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_unique_local() {
                Some("a private address")
            } else if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if v6.segments()[..2] == [0x2001, 0] {
                Some("a tunnel (Teredo) address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> EgressPolicy {
        EgressPolicy::new("", &["postgres://u:p@127.0.0.1:54329/db"]).unwrap()
    }

    fn refused(p: &EgressPolicy, addr: &str) -> Option<&'static str> {
        p.check(addr.parse().unwrap()).err()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let p = strict();
        for (addr, why) in [
            ("127.0.0.1:9092", "a loopback address"),
            ("10.1.2.3:9092", "a private address"),
            ("172.16.0.1:9092", "a private address"),
            ("192.168.1.1:9092", "a private address"),
            ("169.254.169.254:80", "a link-local address"),
            ("100.64.0.1:9092", "a shared (CGNAT) address"),
            ("224.0.0.1:9092", "a multicast address"),
            ("0.0.0.0:9092", "an unspecified address"),
            ("255.255.255.255:9092", "a reserved address"),
            ("[::1]:9092", "a loopback address"),
            ("[::]:9092", "an unspecified address"),
            ("[fd00::1]:9092", "a private address"),
            ("[fe80::1]:9092", "a link-local address"),
            ("[ff02::1]:9092", "a multicast address"),
            ("[::ffff:127.0.0.1]:9092", "a loopback address"),
            ("[64:ff9b::a9fe:a9fe]:80", "a link-local address"),
            ("[2002:c0a8:0101::1]:9092", "a private address"),
            ("[64:ff9b:1::a00:1]:9092", "a private address"),
            ("[::a00:1]:9092", "a private address"),
            ("[2001:0:4136:e378::1]:9092", "a tunnel (Teredo) address"),
            ("192.0.0.8:9092", "a reserved address"),
            ("198.18.0.1:9092", "a reserved address"),
            ("203.0.113.9:9092", "a documentation address"),
        ] {
            assert_eq!(refused(&p, addr), Some(why), "{addr}");
        }
        for addr in ["8.8.8.8:9092", "100.128.0.1:9092", "[2606:4700::1111]:443"] {
            assert_eq!(refused(&p, addr), None, "{addr}");
        }
    }

    #[test]
    fn an_allowed_range_opens_only_itself_and_never_the_database() {
        let p = EgressPolicy::new(
            "127.0.0.2/32, 10.0.0.0/8",
            &["postgres://u:p@127.0.0.2:54329/db", "postgres://t@10.1.1.1/db"],
        )
        .unwrap();
        assert_eq!(refused(&p, "127.0.0.2:9092"), None);
        assert_eq!(refused(&p, "10.9.9.9:9092"), None);
        assert_eq!(refused(&p, "127.0.0.1:9092"), Some("a loopback address"));
        assert_eq!(refused(&p, "127.0.0.2:54329"), Some("this server's own database"));
        assert_eq!(refused(&p, "[::ffff:127.0.0.2]:54329"), Some("this server's own database"));
        assert_eq!(refused(&p, "10.1.1.1:5432"), Some("this server's own database"), "the tenant login's too");
        assert!(EgressPolicy::new("10.0.0.0/33", &[]).is_err());
    }

    #[test]
    fn names_servers_and_urls_are_checked_by_what_they_resolve_to() {
        let p = strict();
        let forbidden = |r: Result<(), EgressError>| match r {
            Err(EgressError::Forbidden(f)) => Some((f.target, f.why)),
            _ => None,
        };
        assert_eq!(forbidden(p.check_server("localhost:9092")).map(|f| f.1), Some("a loopback address"));
        assert_eq!(forbidden(p.check_server("127.0.0.1")), Some(("127.0.0.1:9092".into(), "a loopback address")));
        assert_eq!(forbidden(p.check_server("[::1]:19092")), Some(("[::1]:19092".into(), "a loopback address")));
        assert_eq!(
            forbidden(p.check_url("http://127.0.0.1:9000/")),
            Some(("http://127.0.0.1:9000/".into(), "a loopback address"))
        );
        assert!(matches!(p.check_server("no-such-host.invalid:9092"), Err(EgressError::Unresolved { .. })));
        assert_eq!(p.check_server("8.8.8.8:9092"), Ok(()));
        let text = p.check_server("127.0.0.1:9092").unwrap_err().to_string();
        assert!(
            text.starts_with("forbidden_address: 127.0.0.1:9092 resolves to 127.0.0.1")
                && text.contains("egress.allow")
        );
    }
}
