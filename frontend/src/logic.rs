//! The UI's decisions that do not need a browser: naming, error placement,
//! sparkline geometry, formatting. Compiled natively too, so it is unit-tested
//! with the rest of the workspace.

use chrono::{DateTime, Utc};
use icehouse_api::connections::ConnectionFailureKind;
use icehouse_api::invitations::MailDelivery;
use icehouse_api::pipelines::{IcebergType, PartitionTransform};
use icehouse_api::status::PipelineStatus;
use icehouse_api::FieldError;

/// A table or column name from free text (a topic, a JSON key): lower-case
/// letters, digits and `_`, starting with a letter or `_`, as the API requires.
pub fn sanitize_identifier(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.is_empty() { "table".to_string() } else { trimmed.to_string() };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "t_");
    }
    name.truncate(120);
    // `_dead_letter` names the dead-letter tables; the API refuses it for data.
    if name.ends_with("_dead_letter") {
        name.push_str("_data");
    }
    name
}

/// Whether an API error field (`bootstrap_servers[1]`, `mapping.columns[0].name`)
/// belongs next to the input that edits `input_field`.
pub fn field_matches(api_field: &str, input_field: &str) -> bool {
    match api_field.strip_prefix(input_field) {
        Some("") => true,
        Some(rest) => rest.starts_with('[') || rest.starts_with('.'),
        None => false,
    }
}

/// The errors of `errors` that no input in `shown` displays.
pub fn unshown<'a>(errors: &'a [FieldError], shown: &[&str]) -> Vec<&'a FieldError> {
    errors.iter().filter(|e| !shown.iter().any(|s| field_matches(&e.field, s))).collect()
}

/// Whether a warehouse URI is an S3 one (then the S3 settings apply).
pub fn is_s3_uri(uri: &str) -> bool {
    uri.starts_with("s3://")
}

/// Bootstrap servers typed as one text: separated by commas or lines.
pub fn parse_bootstrap(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The wizard's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WizardStep {
    Connect,
    Destination,
    Mapping,
    Review,
}

impl WizardStep {
    pub fn number(self) -> u8 {
        match self {
            WizardStep::Connect => 1,
            WizardStep::Destination => 2,
            WizardStep::Mapping => 3,
            WizardStep::Review => 4,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            WizardStep::Connect => "Connect",
            WizardStep::Destination => "Destination",
            WizardStep::Mapping => "Mapping",
            WizardStep::Review => "Review",
        }
    }

    pub fn next(self) -> Option<WizardStep> {
        match self {
            WizardStep::Connect => Some(WizardStep::Destination),
            WizardStep::Destination => Some(WizardStep::Mapping),
            WizardStep::Mapping => Some(WizardStep::Review),
            WizardStep::Review => None,
        }
    }

    pub fn prev(self) -> Option<WizardStep> {
        match self {
            WizardStep::Connect => None,
            WizardStep::Destination => Some(WizardStep::Connect),
            WizardStep::Mapping => Some(WizardStep::Destination),
            WizardStep::Review => Some(WizardStep::Mapping),
        }
    }

    /// The step whose inputs edit a field of `CreatePipelineRequest`.
    pub fn of_pipeline_field(field: &str) -> WizardStep {
        let top = field.split(['.', '[']).next().unwrap_or(field);
        match top {
            "connection_id" | "topic" => WizardStep::Connect,
            "mapping" | "partition_by" => WizardStep::Mapping,
            _ => WizardStep::Destination,
        }
    }
}

/// Why a connection test failed, in words for the person at the form.
pub fn failure_headline(kind: ConnectionFailureKind) -> &'static str {
    match kind {
        ConnectionFailureKind::Unreachable => "No broker could be reached. Check the host names and ports.",
        ConnectionFailureKind::AuthFailed => {
            "The brokers refused the credentials. Check the SASL mechanism, user name and password."
        }
        ConnectionFailureKind::Tls => {
            "The TLS handshake failed. Check the security protocol and the brokers' certificates."
        }
        ConnectionFailureKind::Timeout => "The brokers were reached but did not answer in time.",
        ConnectionFailureKind::ForbiddenAddress => {
            "A broker's address is one this server does not connect to (a loopback or private network)."
        }
    }
}

/// Whether an Iceberg type string can be partitioned by `day`/`month`/`year`
/// (and `hour` when `hourly`).
pub fn is_time_partitionable(column_type: &str, hourly: bool) -> bool {
    let transform = if hourly { PartitionTransform::Hour } else { PartitionTransform::Day };
    IcebergType::parse(column_type).is_ok_and(|ty| transform.accepts(&ty))
}

/// Types offered in the mapping editor's list (any Iceberg type may be typed).
pub const COMMON_TYPES: &[&str] = &[
    "string",
    "long",
    "int",
    "double",
    "float",
    "boolean",
    "decimal(18,2)",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "uuid",
    "binary",
    "list<string>",
    "map<string,string>",
];

/// Total lag over the partitions, when every partition's lag is known.
pub fn total_lag(status: &PipelineStatus) -> Option<i64> {
    status.partitions.iter().map(|p| p.lag).sum()
}

/// SVG polyline points for a sparkline of `values` in a `width`×`height` box
/// (y grows downwards; the largest value touches the top, zero the bottom).
pub fn sparkline_points(values: &[i64], width: f64, height: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 { width / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = i as f64 * step;
            let y = height - (*v).max(0) as f64 / max * height;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    // The digits are ASCII, so byte offsets are char offsets.
    let head = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut groups = vec![&digits[..head]];
    let mut rest = &digits[head..];
    while !rest.is_empty() {
        groups.push(&rest[..3]);
        rest = &rest[3..];
    }
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago `t` was, coarsely: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
pub fn ago(t: &DateTime<Utc>, now_ms: i64) -> String {
    let secs = ((now_ms - t.timestamp_millis()) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A SQL result cell as text; SQL NULL is `None`.
pub fn cell_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A message value for display: re-indented when it is JSON, keeping the
/// fields in the order the producer wrote them (a `serde_json::Value` would
/// sort them), as it is otherwise.
pub fn pretty_value(raw: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() {
        return raw.to_string();
    }
    // The text is valid JSON from here on: outside strings, only structure,
    // whitespace and scalars remain.
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    }
    let mut out = String::with_capacity(raw.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut chars = raw.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if let Some(close) = chars.next_if(|n| matches!((c, n), ('{', '}') | ('[', ']'))) {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Beside a suggested column whose type most but not all sampled messages
/// fit: how many do not, the first value that does not, and where they go.
/// `None` when every message fits.
pub fn misfit_note(misfits: u32, sampled: usize, column_type: &str, example: Option<&str>) -> Option<String> {
    if misfits == 0 {
        return None;
    }
    let (verb, they) = if misfits == 1 { ("doesn't", "it") } else { ("don't", "they") };
    let example = example.map(|e| format!(" (e.g. {e})")).unwrap_or_default();
    Some(format!(
        "{misfits} of {sampled} samples {verb} fit {column_type}{example}; {they} will go to the dead-letter table."
    ))
}

/// What the admin who just invited `email` has to do with the link.
pub fn invitation_mail_note(mail: MailDelivery, email: &str) -> String {
    match mail {
        MailDelivery::Sent => format!("An e-mail with this link is on its way to {email}."),
        MailDelivery::NotConfigured | MailDelivery::Failed => {
            "This server did not send an e-mail; pass the link on yourself.".to_string()
        }
        MailDelivery::Throttled => {
            format!("This server did not send an e-mail: {email} got too many lately. Pass the link on yourself.")
        }
    }
}

/// The value of `name` in a URL fragment of `key=value` pairs
/// (`#token=…`), percent-decoded. E-mailed links carry their secret there
/// because a fragment never reaches a server, its logs or a `Referer`.
pub fn fragment_param(hash: &str, name: &str) -> Option<String> {
    hash.strip_prefix('#')
        .unwrap_or(hash)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| percent_decode(value))
        .filter(|value| !value.is_empty())
}

/// `%XX` escapes decoded; `None` when they do not make UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use icehouse_api::status::{PartitionStatus, PipelineState};
    use icehouse_api::validate::is_identifier;
    use icehouse_api::PipelineId;

    #[test]
    fn identifiers_from_topics() {
        for (topic, want) in [
            ("orders", "orders"),
            ("Orders.EU-West", "orders_eu_west"),
            ("shop..orders--v2", "shop_orders_v2"),
            ("2024-events", "t_2024_events"),
            ("__consumer", "consumer"),
            ("...", "table"),
            ("clicks_dead_letter", "clicks_dead_letter_data"),
            ("Ünïcode", "n_code"),
        ] {
            let got = sanitize_identifier(topic);
            assert_eq!(got, want, "{topic}");
            assert!(is_identifier(&got), "{got}");
        }
        assert!(sanitize_identifier(&"a".repeat(300)).len() <= 128);
    }

    #[test]
    fn errors_find_their_inputs() {
        assert!(field_matches("bootstrap_servers[1]", "bootstrap_servers"));
        assert!(field_matches("bootstrap_servers", "bootstrap_servers"));
        assert!(field_matches("mapping.columns[0].name", "mapping.columns[0]"));
        assert!(!field_matches("mapping.columns[10].name", "mapping.columns[1]"));
        assert!(!field_matches("name", "namespace"));
        assert!(!field_matches("namespace", "name"));
        let errors = vec![FieldError::new("name", "x"), FieldError::new("sasl_password", "y")];
        let rest = unshown(&errors, &["name", "bootstrap_servers"]);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].field, "sasl_password");
    }

    #[test]
    fn bootstrap_list() {
        assert_eq!(parse_bootstrap(" a:1, b:2\nc:3 ,, "), ["a:1", "b:2", "c:3"]);
        // A space is not a separator: "not a host" is one (bad) server.
        assert_eq!(parse_bootstrap("not a host"), ["not a host"]);
        assert!(parse_bootstrap("  ").is_empty());
    }

    #[test]
    fn pipeline_errors_go_to_their_step() {
        assert_eq!(WizardStep::of_pipeline_field("table_name"), WizardStep::Destination);
        assert_eq!(WizardStep::of_pipeline_field("name"), WizardStep::Destination);
        assert_eq!(WizardStep::of_pipeline_field("mapping.columns[2].type"), WizardStep::Mapping);
        assert_eq!(WizardStep::of_pipeline_field("partition_by[0].column"), WizardStep::Mapping);
        assert_eq!(WizardStep::of_pipeline_field("topic"), WizardStep::Connect);
    }

    #[test]
    fn partition_types() {
        assert!(is_time_partitionable("timestamptz", true));
        assert!(is_time_partitionable("date", false));
        assert!(!is_time_partitionable("date", true));
        assert!(!is_time_partitionable("string", false));
        assert!(!is_time_partitionable("not a type", false));
        for t in COMMON_TYPES {
            assert!(IcebergType::parse(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn sparkline_geometry() {
        assert_eq!(sparkline_points(&[], 100.0, 20.0), "");
        assert_eq!(sparkline_points(&[0, 5, 10], 100.0, 20.0), "0.0,20.0 50.0,10.0 100.0,0.0");
        // All zeros stay on the bottom line instead of dividing by zero.
        assert_eq!(sparkline_points(&[0, 0], 10.0, 4.0), "0.0,4.0 10.0,4.0");
        assert_eq!(sparkline_points(&[7], 10.0, 4.0), "0.0,0.0");
    }

    #[test]
    fn lag_needs_every_partition() {
        let part = |lag| PartitionStatus { partition: 0, committed_offset: 0, high_watermark: None, lag };
        let mut status = PipelineStatus {
            pipeline_id: "0190f0a0-0000-7000-8000-000000000000".parse::<PipelineId>().unwrap(),
            state: PipelineState::Running,
            partitions: vec![part(Some(3)), part(Some(4))],
            rows_committed: 0,
            dead_letter_rows: 0,
            last_commit_at: None,
            last_error: None,
            last_error_at: None,
            minutes: vec![],
            watermarks_error: None,
        };
        assert_eq!(total_lag(&status), Some(7));
        status.partitions.push(part(None));
        assert_eq!(total_lag(&status), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(-1234567), "-1,234,567");
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(format_time(&t), "2026-01-02 03:04:05 UTC");
        let ms = t.timestamp_millis();
        assert_eq!(ago(&t, ms + 5_000), "5 s ago");
        assert_eq!(ago(&t, ms + 125_000), "2 min ago");
        assert_eq!(ago(&t, ms + 7_200_000), "2 h ago");
        assert_eq!(cell_text(&serde_json::json!(null)), None);
        assert_eq!(cell_text(&serde_json::json!("x")).as_deref(), Some("x"));
        assert_eq!(cell_text(&serde_json::json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(pretty_value("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(pretty_value("not json"), "not json");
        assert!(is_s3_uri("s3://bucket/x"));
        assert!(!is_s3_uri("file:///s3://") && !is_s3_uri("s3:/") && !is_s3_uri(""));
        // Field order kept, nesting indented, empty containers and strings
        // with structure characters and escapes left alone.
        let raw = r#"{"z": 1, "a": {"y": [1, {}], "b": []}, "s": "a,b:{\"[]\\"}"#;
        assert_eq!(
            pretty_value(raw),
            "{\n  \"z\": 1,\n  \"a\": {\n    \"y\": [\n      1,\n      {}\n    ],\n    \"b\": []\n  },\n  \"s\": \"a,b:{\\\"[]\\\\\"\n}"
        );
        let value: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&pretty_value(raw)).unwrap(), value);
    }

    #[test]
    fn misfit_notes() {
        assert_eq!(misfit_note(0, 100, "long", None), None);
        assert_eq!(
            misfit_note(1, 100, "int", Some("\"three\"")).unwrap(),
            "1 of 100 samples doesn't fit int (e.g. \"three\"); it will go to the dead-letter table."
        );
        assert_eq!(
            misfit_note(4, 99, "timestamptz", None).unwrap(),
            "4 of 99 samples don't fit timestamptz; they will go to the dead-letter table."
        );
    }

    #[test]
    fn tokens_from_link_fragments() {
        assert_eq!(fragment_param("#token=abc_DEF-123", "token").as_deref(), Some("abc_DEF-123"));
        assert_eq!(fragment_param("token=abc", "token").as_deref(), Some("abc"));
        assert_eq!(fragment_param("#x=1&token=a%2Bb%3D", "token").as_deref(), Some("a+b="));
        assert_eq!(fragment_param("#token=a=b", "token").as_deref(), Some("a=b"));
        assert_eq!(fragment_param("#token=50%", "token").as_deref(), Some("50%"));
        assert_eq!(fragment_param("#token=%+1", "token").as_deref(), Some("%+1"));
        assert_eq!(fragment_param("#token=%ff", "token"), None);
        assert_eq!(fragment_param("#token=", "token"), None);
        assert_eq!(fragment_param("#tokens=abc", "token"), None);
        assert_eq!(fragment_param("", "token"), None);
    }

    #[test]
    fn invitation_notes_say_who_sends_the_link() {
        assert_eq!(
            invitation_mail_note(MailDelivery::Sent, "vic@coffee.test"),
            "An e-mail with this link is on its way to vic@coffee.test."
        );
        for mail in [MailDelivery::NotConfigured, MailDelivery::Failed] {
            assert_eq!(
                invitation_mail_note(mail, "vic@coffee.test"),
                "This server did not send an e-mail; pass the link on yourself."
            );
        }
        assert_eq!(
            invitation_mail_note(MailDelivery::Throttled, "vic@coffee.test"),
            "This server did not send an e-mail: vic@coffee.test got too many lately. Pass the link on yourself."
        );
    }
}
