//! Rate limits on the ways in: log-in, sign-up and token refresh, by client
//! address and by account, so guessing a password or flooding sign-ups
//! answers 429 instead of burning argon2 time for everyone.
//!
//! governor's keyed GCRA limiters hold the state. Keys of addresses and
//! accounts that have fully recovered are dropped every few thousand
//! attempts, and a limiter at its cap of keys refuses every attempt (fails
//! closed; it looks again every second) until enough keys recover, so a
//! flood of made-up accounts can neither grow memory without bound nor wipe
//! the count of the account under attack.
//!
//! The per-account limit counts every attempt, so an attacker can keep one
//! account at 429 (about 100 attempts an hour); that is the price of
//! stopping a guesser who has many addresses. A limit of 0 switches it off.
//!
//! Mail is limited per recipient as well, so nobody can bury an inbox, and
//! invitation mail per tenant, so nobody spams through the operator's SMTP
//! server. Past the limit, sign-up and reset mail is dropped quietly (their
//! answer must stay the same) and an invitation says `throttled`.
//!
//! The address is the TCP peer, or, behind a reverse proxy listed in
//! `http.trusted_proxies`, the client its `X-Forwarded-For` names
//! ([`crate::extract::client_address`]).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthLimitsConfig;
use crate::error::ApiError;

/// Drop recovered keys this often (in attempts).
const JANITOR_EVERY: u64 = 4096;
/// At most this many keys per limiter (about 100 bytes each).
const MAX_KEYS: usize = 100_000;

pub struct AuthLimits {
    by_address: Keyed<IpAddr>,
    by_account: Keyed<String>,
    by_recipient: Keyed<String>,
    by_inviting_tenant: Keyed<uuid::Uuid>,
    attempts: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` of the last tidy.
    tidied_at: AtomicU64,
}

impl AuthLimits {
    pub fn new(config: &AuthLimitsConfig) -> AuthLimits {
        let minute = Duration::from_secs(60);
        AuthLimits {
            by_address: Keyed::new(config.per_address_burst, minute, config.per_address_per_minute),
            by_account: Keyed::new(config.per_account_burst, 60 * minute, config.per_account_per_hour),
            by_recipient: Keyed::new(config.mail_per_recipient_burst, 60 * minute, config.mail_per_recipient_per_hour),
            by_inviting_tenant: Keyed::new(config.mail_per_tenant_burst, 60 * minute, config.mail_per_tenant_per_hour),
            attempts: AtomicU64::new(0),
            started: Instant::now(),
            tidied_at: AtomicU64::new(0),
        }
    }

    /// Counts one attempt from `address`, and on `account` (an e-mail) when
    /// the request names one: `TooManyRequests` once either is over its limit.
    pub fn check(&self, address: IpAddr, account: Option<&str>) -> Result<(), ApiError> {
        let now = self.started.elapsed().as_millis() as u64;
        let due = self.attempts.fetch_add(1, Ordering::Relaxed) % JANITOR_EVERY == JANITOR_EVERY - 1
            // A full limiter refuses everyone: look again every second.
            || ((self.by_address.is_full() || self.by_account.is_full() || self.by_recipient.is_full())
                && now.saturating_sub(self.tidied_at.load(Ordering::Relaxed)) >= 1000);
        if due {
            self.tidied_at.store(now, Ordering::Relaxed);
            self.by_address.tidy();
            self.by_account.tidy();
            self.by_recipient.tidy();
            self.by_inviting_tenant.tidy();
        }
        self.by_address.check(&address_key(address))?;
        if let Some(account) = account {
            self.by_account.check(&account.trim().to_lowercase())?;
        }
        Ok(())
    }

    /// Whether one more unrequested mail may go to `to` (an e-mail address).
    pub fn allow_mail(&self, to: &str) -> bool {
        self.by_recipient.check(&to.trim().to_lowercase()).is_ok()
    }

    /// Whether a tenant may have one more invitation mailed, to `to`: the
    /// recipient's limit, and the tenant's own, so that nobody turns the
    /// operator's SMTP server into a spam relay with many addresses.
    pub fn allow_invitation_mail(&self, tenant: icehouse_api::TenantId, to: &str) -> bool {
        self.by_inviting_tenant.check(&tenant.as_uuid()).is_ok() && self.allow_mail(to)
    }
}

/// One keyed limiter (none when its burst or rate is 0).
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    full: AtomicBool,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(burst: u32, period: Duration, count: u32) -> Keyed<K> {
        let limiter = NonZeroU32::new(burst)
            .zip(NonZeroU32::new(count))
            .map(|(burst, count)| RateLimiter::keyed(quota(burst, period, count)));
        Keyed { limiter, full: AtomicBool::new(false) }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.full.load(Ordering::Relaxed) {
            return Err(ApiError::TooManyRequests { retry_after_secs: 60, what: "attempts" });
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::TooManyRequests { retry_after_secs, what: "attempts" }
        })
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    fn tidy(&self) {
        let Some(limiter) = &self.limiter else { return };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let full = limiter.len() >= MAX_KEYS;
        if full && !self.full.load(Ordering::Relaxed) {
            tracing::warn!(
                keys = limiter.len(),
                "rate-limit state at its cap; refusing every attempt until it recovers"
            );
        }
        self.full.store(full, Ordering::Relaxed);
    }
}

/// A burst of `burst` that refills at `count` per `period` (both positive).
fn quota(burst: NonZeroU32, period: Duration, count: NonZeroU32) -> Quota {
    let every = period / count.get();
    Quota::with_period(every.max(Duration::from_millis(1))).expect("a positive period").allow_burst(burst)
}

/// IPv6 clients are limited by /64, the block one host usually holds.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_429_per_address_and_per_account() {
        let limits = AuthLimits::new(&AuthLimitsConfig {
            per_address_burst: 3,
            per_address_per_minute: 1,
            per_account_burst: 5,
            per_account_per_hour: 1,
            mail_per_recipient_burst: 2,
            mail_per_recipient_per_hour: 1,
            mail_per_tenant_burst: 1,
            mail_per_tenant_per_hour: 1,
        });
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        for _ in 0..3 {
            limits.check(a, Some("ada@acme.test")).unwrap();
        }
        let Err(ApiError::TooManyRequests { retry_after_secs, .. }) = limits.check(a, Some("other@acme.test")) else {
            panic!("the fourth attempt from one address passed")
        };
        assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
        // Another address may go on, until the account's own limit (case and spaces do not matter).
        limits.check(b, Some(" ADA@acme.test")).unwrap();
        limits.check(b, Some("ada@acme.test")).unwrap();
        assert!(matches!(limits.check(c, Some("ada@acme.test")), Err(ApiError::TooManyRequests { .. })));
        limits.check(c, Some("bob@acme.test")).unwrap();
        // Unrequested mail: a burst per recipient, whoever asks.
        assert!(limits.allow_mail("ada@acme.test") && limits.allow_mail("Ada@acme.test "));
        assert!(!limits.allow_mail("ada@acme.test"));
        assert!(limits.allow_mail("bob@acme.test"));
        // Invitations: the tenant's own limit, then the recipient's.
        let tenant = icehouse_api::TenantId::from_uuid(uuid::Uuid::now_v7());
        assert!(limits.allow_invitation_mail(tenant, "carol@acme.test"));
        assert!(!limits.allow_invitation_mail(tenant, "dave@acme.test"));
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
