//! The live connection test: connect, fetch cluster metadata, and on failure
//! say why in terms a person can act on.
//!
//! librdkafka reports connection problems asynchronously through its error
//! callback, not through the metadata call (which only times out), so the
//! probe polls in short slices, collects what the callback saw, and stops as
//! soon as the failure is certain (every broker refused, or credentials were
//! rejected) instead of waiting out the whole timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use icehouse_api::connections::{
    BrokerInfo, ConnectionFailure, ConnectionFailureKind, ConnectionTestResult, TopicInfo,
};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::KafkaSettings;
use crate::egress::EgressError;

#[derive(Default)]
struct ProbeContext {
    errors: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "librdkafka");
        // Some failures (a TLS handshake, SASL) show up in logs before the error callback.
        if matches!(level, RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning) {
            self.errors.lock().unwrap().push((None, log_message.to_string()));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka probe error");
        self.errors.lock().unwrap().push((error.rdkafka_error_code(), reason.to_string()));
    }
}

impl ConsumerContext for ProbeContext {}

/// Connects to the cluster and lists brokers and topics, within `timeout`.
pub async fn probe(settings: KafkaSettings, timeout: Duration) -> ConnectionTestResult {
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || probe_blocking(&settings, timeout)).await.unwrap_or_else(|e| {
        Err(ConnectionFailure {
            kind: ConnectionFailureKind::Timeout,
            message: format!("the probe did not finish: {e}"),
        })
    });
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((brokers, topics)) => ConnectionTestResult::Ok { brokers, topics, elapsed_ms },
        Err(failure) => ConnectionTestResult::Failed { failure, elapsed_ms },
    }
}

type Metadata = (Vec<BrokerInfo>, Vec<TopicInfo>);

fn probe_blocking(settings: &KafkaSettings, timeout: Duration) -> Result<Metadata, ConnectionFailure> {
    let timeout_ms = timeout.as_millis().max(100).to_string();
    let mut config = settings.checked_config().map_err(refused)?;
    config
        .set("socket.connection.setup.timeout.ms", &timeout_ms)
        .set("socket.timeout.ms", &timeout_ms)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("enable.auto.commit", "false")
        .set("log.connection.close", "false")
        .set_log_level(RDKafkaLogLevel::Warning);
    let consumer: BaseConsumer<ProbeContext> =
        config.create_with_context(ProbeContext::default()).map_err(|e| ConnectionFailure {
            kind: ConnectionFailureKind::Unreachable,
            message: format!("the connection settings were refused by the Kafka client: {e}"),
        })?;

    let deadline = Instant::now() + timeout;
    let servers = settings.bootstrap_servers.join(", ");
    loop {
        let now = Instant::now();
        let slice = (deadline.saturating_duration_since(now)).min(Duration::from_millis(250));
        match consumer.fetch_metadata(None, slice) {
            Ok(md) => {
                settings.check_brokers(&md).map_err(refused)?;
                let brokers = md
                    .brokers()
                    .iter()
                    .map(|b| BrokerInfo { id: b.id(), host: b.host().to_string(), port: b.port() })
                    .collect();
                let mut topics: Vec<TopicInfo> = md
                    .topics()
                    .iter()
                    .filter(|t| !t.name().starts_with("__") && t.error().is_none())
                    .map(|t| TopicInfo { name: t.name().to_string(), partitions: t.partitions().len() })
                    .collect();
                topics.sort_by(|a, b| a.name.cmp(&b.name));
                return Ok((brokers, topics));
            }
            Err(err) => {
                // Serve the client's event queue so the error callback runs.
                let _ = consumer.poll(Duration::ZERO);
                let seen = consumer.context().errors.lock().unwrap().clone();
                if let Some(failure) = classify(&seen, &servers, false) {
                    return Err(failure);
                }
                if Instant::now() >= deadline {
                    return Err(classify(&seen, &servers, true).unwrap_or_else(|| ConnectionFailure {
                        kind: ConnectionFailureKind::Timeout,
                        message: format!("no answer from {servers} within {} ms ({err})", timeout.as_millis()),
                    }));
                }
            }
        }
    }
}

/// A bootstrap server or an advertised broker the egress policy refuses
/// (or whose name does not resolve, which the client would find too).
fn refused(e: EgressError) -> ConnectionFailure {
    let kind = match e {
        EgressError::Forbidden(_) => ConnectionFailureKind::ForbiddenAddress,
        EgressError::Unresolved { .. } | EgressError::Invalid { .. } => ConnectionFailureKind::Unreachable,
    };
    ConnectionFailure { kind, message: e.to_string() }
}

/// Turns what librdkafka reported into one failure. With `final_call` the
/// time is up and the most telling error wins; otherwise only certain
/// failures end the probe early.
fn classify(seen: &[(Option<RDKafkaErrorCode>, String)], servers: &str, final_call: bool) -> Option<ConnectionFailure> {
    let any = |pred: &dyn Fn(&Option<RDKafkaErrorCode>, &str) -> bool| {
        seen.iter().find(|(code, text)| pred(code, &text.to_ascii_lowercase())).map(|(_, t)| t.clone())
    };
    if let Some(text) = any(&|code, text| {
        matches!(code, Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed))
            || text.contains("sasl authentication")
            || text.contains("authentication failed")
    }) {
        return Some(ConnectionFailure {
            kind: ConnectionFailureKind::AuthFailed,
            message: format!("the cluster refused the credentials: {}", tidy(&text)),
        });
    }
    if let Some(text) = any(&|code, text| {
        matches!(code, Some(RDKafkaErrorCode::SSL)) || text.contains("ssl handshake") || text.contains("certificate")
    }) {
        return Some(ConnectionFailure {
            kind: ConnectionFailureKind::Tls,
            message: format!("the TLS handshake with the broker failed: {}", tidy(&text)),
        });
    }
    let all_down = seen.iter().any(|(code, _)| matches!(code, Some(RDKafkaErrorCode::AllBrokersDown)));
    let transport = any(&|code, text| {
        matches!(code, Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve))
            || text.contains("connection refused")
            || text.contains("failed to resolve")
            || text.contains("network is unreachable")
            || text.contains("no route to host")
    });
    match transport {
        Some(text) if all_down || final_call => Some(ConnectionFailure {
            kind: ConnectionFailureKind::Unreachable,
            message: format!("could not reach any broker at {servers}: {}", tidy(&text)),
        }),
        _ => None,
    }
}

/// librdkafka's texts carry thread and broker prefixes and internal state
/// names; keep the human part (`Connect to ipv4#h:p failed: Connection
/// refused` says no more than `connection refused` once the address is given).
fn tidy(text: &str) -> String {
    let mut text = text.split(" (after ").next().unwrap_or(text).trim();
    while let Some((prefix, rest)) = text.split_once(": ") {
        // `[thrd:h:p/bootstrap]`, `h:p/bootstrap`, `sasl_ssl://h:p/1`: no spaces.
        let internal = !prefix.contains(' ') && (prefix.contains('/') || prefix.contains('#'));
        if !internal {
            break;
        }
        text = rest.trim();
    }
    if let Some((attempt, reason)) = text.split_once(" failed: ") {
        if attempt.starts_with("Connect to ") {
            return super::broker_text(reason).to_lowercase();
        }
    }
    super::broker_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidies_librdkafka_text() {
        assert_eq!(
            tidy("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"),
            "connection refused"
        );
        assert_eq!(
            tidy("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
            "connection refused"
        );
        assert_eq!(
            tidy("kafka.example:9092/bootstrap: Failed to resolve 'kafka.example:9092': Name or service not known"),
            "Failed to resolve 'kafka.example:9092': Name or service not known"
        );
    }

    #[test]
    fn refused_everywhere_is_unreachable() {
        let seen = vec![
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "x/bootstrap: Connect failed: Connection refused".to_string(),
            ),
            (Some(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down".to_string()),
        ];
        let f = classify(&seen, "x:1", false).unwrap();
        assert_eq!(f.kind, ConnectionFailureKind::Unreachable);
        assert!(classify(&seen[..1], "x:1", false).is_none(), "one refusal alone is not final");
        assert_eq!(classify(&[], "x:1", true), None);
    }

    #[test]
    fn a_brokers_own_words_are_kept_short() {
        // What a hostile broker puts in its SaslAuthenticate error message.
        let body = format!("<html><body>\n{}\n</body></html>", "secret-internal-detail ".repeat(500));
        let seen = vec![(
            Some(RDKafkaErrorCode::SaslAuthenticationFailed),
            format!("b:1/bootstrap: SASL authentication error: {body}"),
        )];
        let f = classify(&seen, "b:1", false).unwrap();
        assert_eq!(f.kind, ConnectionFailureKind::AuthFailed);
        let words = f.message.strip_prefix("the cluster refused the credentials: ").unwrap();
        assert!(words.starts_with("SASL authentication error: <html><body> secret-internal-detail"), "{words}");
        assert_eq!(
            (words.chars().count(), words.contains('\n')),
            (crate::kafka::MAX_BROKER_TEXT + 1, false),
            "{words}"
        );
    }
}
