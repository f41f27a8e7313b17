//! Pipelines: a Kafka topic flowing into an Iceberg table, with the mapping
//! from message fields to typed columns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{ConnectionId, DestinationId, FieldError, PipelineId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// From the oldest message the topic still holds.
    Earliest,
    /// Only messages produced after the pipeline first starts.
    Latest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Paused,
}

/// How a numeric or string value becomes a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    Iso8601,
    EpochSeconds,
    EpochMillis,
    EpochMicros,
}

/// One column of the table and where its value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The column name: lower-case letters, digits and `_`.
    pub name: String,
    /// An Iceberg type: `boolean`, `int`, `long`, `float`, `double`,
    /// `decimal(p,s)`, `string`, `uuid`, `date`, `time`, `timestamp`,
    /// `timestamptz`, `binary`, `list<T>`, `map<K,V>`, `struct<a:T,b:U>`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// A JSON path into the message, e.g. `$.customer.id` or `$.items[0].sku`.
    pub path: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// For timestamp, timestamptz and date columns; ISO-8601 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<TimestampFormat>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub columns: Vec<ColumnMapping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTransform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
}

/// One field of the table's partition spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionField {
    pub column: String,
    pub transform: PartitionTransform,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    pub id: PipelineId,
    pub name: String,
    pub connection_id: ConnectionId,
    pub topic: String,
    pub destination_id: DestinationId,
    pub namespace: String,
    pub table_name: String,
    pub format: MessageFormat,
    pub mapping: Mapping,
    pub partition_by: Vec<PartitionField>,
    pub start_position: StartPosition,
    pub flush_interval_ms: u32,
    pub desired_state: DesiredState,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipelineRequest {
    pub name: String,
    pub connection_id: ConnectionId,
    pub topic: String,
    pub destination_id: DestinationId,
    /// The destination's default namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub table_name: String,
    #[serde(default = "default_format")]
    pub format: MessageFormat,
    pub mapping: Mapping,
    #[serde(default)]
    pub partition_by: Vec<PartitionField>,
    #[serde(default = "default_start")]
    pub start_position: StartPosition,
    /// Upper bound on the time between two commits (100 to 600000 ms; default 1000).
    #[serde(default = "default_flush")]
    pub flush_interval_ms: u32,
    #[serde(default = "default_state")]
    pub desired_state: DesiredState,
}

fn default_format() -> MessageFormat {
    MessageFormat::Json
}
fn default_start() -> StartPosition {
    StartPosition::Earliest
}
fn default_flush() -> u32 {
    1000
}
fn default_state() -> DesiredState {
    DesiredState::Running
}

/// Changes the given fields; absent fields keep their value. The source
/// (connection, topic) and the target (destination, namespace, table) of a
/// pipeline are fixed once created: make a new pipeline to move them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePipelineRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Mapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<DesiredState>,
}

pub const MIN_FLUSH_MS: u32 = 100;
pub const MAX_FLUSH_MS: u32 = 600_000;
pub const MAX_COLUMNS: usize = 1000;

impl Validate for CreatePipelineRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.name("name", &self.name);
        validate_topic(&mut v, "topic", &self.topic);
        if let Some(ns) = &self.namespace {
            v.identifier("namespace", ns);
        }
        v.identifier("table_name", &self.table_name);
        if self.table_name.ends_with("_dead_letter") {
            v.error("table_name", "must not end in _dead_letter (reserved for dead-letter tables)");
        }
        validate_flush(&mut v, self.flush_interval_ms);
        validate_mapping(&mut v, &self.mapping);
        validate_partitioning(&mut v, &self.partition_by, &self.mapping);
        v.finish()
    }
}

impl Validate for UpdatePipelineRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        if let Some(name) = &self.name {
            v.name("name", name);
        }
        if let Some(ms) = self.flush_interval_ms {
            validate_flush(&mut v, ms);
        }
        if let Some(mapping) = &self.mapping {
            validate_mapping(&mut v, mapping);
        }
        v.finish()
    }
}

fn validate_flush(v: &mut Validator, ms: u32) {
    v.check(
        (MIN_FLUSH_MS..=MAX_FLUSH_MS).contains(&ms),
        "flush_interval_ms",
        format!("must be between {MIN_FLUSH_MS} and {MAX_FLUSH_MS}"),
    );
}

/// Kafka's own topic name rules.
pub fn validate_topic(v: &mut Validator, field: &str, topic: &str) {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    v.check(ok, field, "must be 1 to 249 characters of letters, digits, ., _ and -");
}

pub fn validate_mapping(v: &mut Validator, mapping: &Mapping) {
    if mapping.columns.is_empty() {
        v.error("mapping.columns", "must have at least one column");
    } else if mapping.columns.len() > MAX_COLUMNS {
        v.error("mapping.columns", format!("must have at most {MAX_COLUMNS} columns"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, col) in mapping.columns.iter().take(MAX_COLUMNS).enumerate() {
        let field = |f: &str| format!("mapping.columns[{i}].{f}");
        v.identifier(&field("name"), &col.name);
        if !seen.insert(col.name.as_str()) {
            v.error(field("name"), format!("duplicate column name `{}`", col.name));
        }
        match IcebergType::parse(&col.column_type) {
            Err(message) => v.error(field("type"), message),
            Ok(ty) => {
                if col.timestamp_format.is_some() && !ty.is_temporal() {
                    v.error(field("timestamp_format"), "is only allowed on date, timestamp and timestamptz columns");
                }
            }
        }
        if let Err(message) = JsonPath::parse(&col.path) {
            v.error(field("path"), message);
        }
    }
}

fn validate_partitioning(v: &mut Validator, fields: &[PartitionField], mapping: &Mapping) {
    if fields.len() > 4 {
        v.error("partition_by", "must have at most 4 fields");
    }
    for (i, pf) in fields.iter().take(4).enumerate() {
        let field = format!("partition_by[{i}].column");
        let Some(col) = mapping.columns.iter().find(|c| c.name == pf.column) else {
            v.error(field, format!("`{}` is not a column of the mapping", pf.column));
            continue;
        };
        let Ok(ty) = IcebergType::parse(&col.column_type) else { continue };
        let ok = match pf.transform {
            PartitionTransform::Identity => ty.is_primitive(),
            PartitionTransform::Year | PartitionTransform::Month | PartitionTransform::Day => {
                matches!(ty, IcebergType::Date | IcebergType::Timestamp | IcebergType::Timestamptz)
            }
            PartitionTransform::Hour => {
                matches!(ty, IcebergType::Timestamp | IcebergType::Timestamptz)
            }
        };
        v.check(
            ok,
            &field,
            format!("cannot be partitioned by {:?} (type {})", pf.transform, col.column_type).to_lowercase(),
        );
    }
}

/// An Iceberg type as written in a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcebergType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u8, scale: u8 },
    String,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Binary,
    List(Box<IcebergType>),
    Map(Box<IcebergType>, Box<IcebergType>),
    Struct(Vec<(String, IcebergType)>),
}

impl IcebergType {
    pub fn parse(text: &str) -> Result<IcebergType, String> {
        if text.len() > 4096 {
            return Err("is too long".into());
        }
        let mut p = TypeParser { s: text.as_bytes(), pos: 0 };
        let ty = p.parse_type().map_err(|e| format!("`{text}` is not an Iceberg type: {e}"))?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(format!("`{text}` is not an Iceberg type: unexpected text at {}", p.pos));
        }
        Ok(ty)
    }

    pub fn is_primitive(&self) -> bool {
        !matches!(self, IcebergType::List(_) | IcebergType::Map(..) | IcebergType::Struct(_))
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self, IcebergType::Date | IcebergType::Timestamp | IcebergType::Timestamptz)
    }
}

impl std::fmt::Display for IcebergType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IcebergType::Boolean => f.write_str("boolean"),
            IcebergType::Int => f.write_str("int"),
            IcebergType::Long => f.write_str("long"),
            IcebergType::Float => f.write_str("float"),
            IcebergType::Double => f.write_str("double"),
            IcebergType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            IcebergType::String => f.write_str("string"),
            IcebergType::Uuid => f.write_str("uuid"),
            IcebergType::Date => f.write_str("date"),
            IcebergType::Time => f.write_str("time"),
            IcebergType::Timestamp => f.write_str("timestamp"),
            IcebergType::Timestamptz => f.write_str("timestamptz"),
            IcebergType::Binary => f.write_str("binary"),
            IcebergType::List(e) => write!(f, "list<{e}>"),
            IcebergType::Map(k, v) => write!(f, "map<{k},{v}>"),
            IcebergType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}:{ty}")?;
                }
                f.write_str(">")
            }
        }
    }
}

struct TypeParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_') {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", c as char, self.pos))
        }
    }

    fn peek(&mut self, c: u8) -> bool {
        self.skip_ws();
        self.s.get(self.pos) == Some(&c)
    }

    fn number(&mut self) -> Result<u8, String> {
        let w = self.word().to_string();
        w.parse::<u8>().map_err(|_| format!("expected a number, found `{w}`"))
    }

    fn parse_type(&mut self) -> Result<IcebergType, String> {
        let word = self.word().to_ascii_lowercase();
        Ok(match word.as_str() {
            "boolean" => IcebergType::Boolean,
            "int" | "integer" => IcebergType::Int,
            "long" | "bigint" => IcebergType::Long,
            "float" => IcebergType::Float,
            "double" => IcebergType::Double,
            "string" => IcebergType::String,
            "uuid" => IcebergType::Uuid,
            "date" => IcebergType::Date,
            "time" => IcebergType::Time,
            "timestamp" => IcebergType::Timestamp,
            "timestamptz" => IcebergType::Timestamptz,
            "binary" => IcebergType::Binary,
            "decimal" => {
                self.expect(b'(')?;
                let precision = self.number()?;
                self.expect(b',')?;
                let scale = self.number()?;
                self.expect(b')')?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err("decimal needs 1 <= precision <= 38 and scale <= precision".into());
                }
                IcebergType::Decimal { precision, scale }
            }
            "list" => {
                self.expect(b'<')?;
                let element = self.parse_type()?;
                self.expect(b'>')?;
                IcebergType::List(Box::new(element))
            }
            "map" => {
                self.expect(b'<')?;
                let key = self.parse_type()?;
                if !key.is_primitive() {
                    return Err("map keys must be of a primitive type".into());
                }
                self.expect(b',')?;
                let value = self.parse_type()?;
                self.expect(b'>')?;
                IcebergType::Map(Box::new(key), Box::new(value))
            }
            "struct" => {
                self.expect(b'<')?;
                let mut fields: Vec<(String, IcebergType)> = Vec::new();
                loop {
                    let name = self.word().to_string();
                    if !crate::validate::is_identifier(&name) {
                        return Err(format!("`{name}` is not a valid struct field name"));
                    }
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(format!("duplicate struct field `{name}`"));
                    }
                    self.expect(b':')?;
                    let ty = self.parse_type()?;
                    fields.push((name, ty));
                    if self.peek(b',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(b'>')?;
                IcebergType::Struct(fields)
            }
            "" => return Err(format!("expected a type at {}", self.pos)),
            other => return Err(format!("unknown type `{other}`")),
        })
    }
}

/// A path into a JSON message: `$`, then `.field` or `[index]` segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(pub Vec<PathSegment>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("`{text}` is not a path like $.a.b or $.items[0]: {why}");
        if text.len() > 1024 {
            return Err("is too long".into());
        }
        let rest = text.strip_prefix('$').ok_or_else(|| bad("must start with $"))?;
        let mut segments = Vec::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            match c {
                '.' => {
                    let mut name = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        if c == ']' {
                            return Err(bad("unmatched ]"));
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.is_empty() {
                        return Err(bad("empty field name"));
                    }
                    segments.push(PathSegment::Field(name));
                }
                '[' => {
                    let mut digits = String::new();
                    loop {
                        match chars.next() {
                            Some((_, ']')) => break,
                            Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                            _ => return Err(bad("an index is [digits]")),
                        }
                    }
                    let index = digits.parse().map_err(|_| bad("an index is [digits]"))?;
                    segments.push(PathSegment::Index(index));
                }
                _ => return Err(bad("expected . or [")),
            }
        }
        // Messages are JSON objects, so a path starts with a field name.
        if !matches!(segments.first(), Some(PathSegment::Field(_))) {
            return Err(bad("must start with a field, like $.name"));
        }
        Ok(JsonPath(segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip() {
        for t in [
            "boolean",
            "int",
            "long",
            "float",
            "double",
            "decimal(10,2)",
            "string",
            "uuid",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "binary",
            "list<string>",
            "map<string,long>",
            "struct<id:long,tags:list<string>,addr:struct<city:string>>",
        ] {
            assert_eq!(IcebergType::parse(t).unwrap().to_string(), t);
        }
        assert_eq!(IcebergType::parse(" decimal( 38 , 0 ) ").unwrap().to_string(), "decimal(38,0)");
        for bad in [
            "",
            "str",
            "decimal(0,0)",
            "decimal(39,1)",
            "decimal(5,6)",
            "list<>",
            "list<int",
            "map<list<int>,int>",
            "struct<>",
            "struct<A:int>",
            "struct<a:int,a:int>",
            "int int",
        ] {
            assert!(IcebergType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            JsonPath::parse("$.items[2].sku").unwrap().0,
            vec![PathSegment::Field("items".into()), PathSegment::Index(2), PathSegment::Field("sku".into())]
        );
        for bad in ["", "$", "a.b", "$.", "$..a", "$[x]", "$.a[", "$.a]", "$[0]", "$[0].a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
