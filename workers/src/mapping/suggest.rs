//! Suggesting a mapping from sampled messages: deterministic, and never a
//! column the decoder would reject for the messages it was suggested from.
//!
//! Every sampled value that is a JSON object is read once into a small tree
//! that keeps its key order (serde_json's own maps sort keys), and all trees
//! are merged into one [`Shape`] per path: which kinds of JSON value were seen
//! there, how many samples had a value, the first value. The columns come from
//! the merged shapes, in the order their keys were first seen.
//!
//! # Types
//!
//! | seen (non-null) | suggested |
//! | --- | --- |
//! | only booleans | `boolean` |
//! | only integers in int32 / int64 / 38 digits | `int` / `long` / `decimal(38,0)` (the widest seen) |
//! | numbers with a fraction or exponent | `double` (integers widen to it) |
//! | numbers in a field named `ts`, `time`, `timestamp`, `*_at`, `*_ts`, `*_time`, `*_timestamp`, all in one epoch unit's range for the years 2000–2100 | `timestamptz`, `epoch_seconds` / `epoch_millis` / `epoch_micros` |
//! | strings, all ISO-8601 timestamps with an offset / without / plain dates | `timestamptz` / `timestamp` / `date`, `iso8601` |
//! | strings, all hyphenated UUIDs | `uuid` |
//! | arrays | `list<T>` of the elements' widened type (`list<string>` when no element was seen) |
//! | objects | [`NestedMode::Flatten`]: a column per field, `a_b` at `$.a.b`; [`NestedMode::Struct`]: `struct<…>` (inside lists always) |
//! | only nulls, or a mix of kinds | `string`: the decoder keeps any JSON value as its text, unless one kind is a clear majority (below) |
//!
//! # A clear majority
//!
//! Where the kinds seen conflict so that the table above gives `string` (a
//! mix of kinds, or strings of different forms), but at least 95 % of the
//! values (nulls not counted) are of one kind, that kind's type is suggested
//! instead: booleans, numbers (widened among themselves as above, epochs
//! included), timestamps, dates or UUIDs of one form, or arrays. The rest
//! are the column's misfits: each [`SuggestedColumn`] counts the sampled
//! messages whose value does not fit its type (the ones the decoder sends to
//! the dead-letter table), found by running the real decoder over the
//! samples, and shows the first such value. Objects are never a majority: a
//! flattened column would silently read a non-object as null instead of
//! rejecting it. Inside lists the kinds are of elements, not of messages, so
//! a mix there stays `string`.
//!
//! Epoch timestamps are only suggested for columns: a column's
//! `timestamp_format` does not reach into structs and lists, where numbers stay
//! numbers.
//!
//! A struct field must be named exactly as its key and be a valid identifier,
//! so other keys (`firstName`, `Unit Price`) cannot be struct fields. Inside a
//! list they are left out; elsewhere, in struct mode, they get columns of their
//! own beside the struct (`customer_first_name` at `$.customer.firstName`).
//! Keys a path cannot name (empty, or containing `.`, `[` or `]`) are skipped.
//! A struct with no field left, nesting deeper than 16 levels and types
//! longer than a mapping allows are `string`. Past 1000 columns the rest are
//! left out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use icehouse_api::pipelines::{ColumnMapping, CompiledMapping, IcebergType, Mapping, TimestampFormat, MAX_COLUMNS};
use icehouse_api::sample::{NestedMode, SuggestedColumn};
use icehouse_api::validate::is_identifier;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::formats::json::{JsonDecoder, Key};

/// Values nested deeper than this are not looked into (their column is `string`).
const MAX_DEPTH: usize = 16;
/// The longest type text and path that `validate_mapping` accepts, and the longest column name.
const MAX_TYPE_LEN: usize = 4096;
const MAX_PATH_LEN: usize = 1024;
const MAX_NAME_LEN: usize = 128;
/// How much of a value an example shows.
const EXAMPLE_CHARS: usize = 80;
/// The share of values (in percent, nulls not counted) one kind needs to
/// decide a column's type over the others.
const MAJORITY_PERCENT: usize = 95;

/// Suggests the columns of a mapping for messages like `values` (raw Kafka
/// message values; those that are not a JSON object are ignored).
///
/// The same values always give the same suggestion; columns come in the order
/// their keys were first seen. Every column is accepted by
/// [`validate_mapping`](icehouse_api::pipelines::validate_mapping), and every
/// object among `values` decodes with the suggested mapping, except the
/// misfits each column counts.
pub fn suggest(values: &[&[u8]], mode: NestedMode) -> Vec<SuggestedColumn> {
    let mut root = Object::default();
    let mut objects = Vec::new();
    for value in values {
        let Some(members) = read_object(value) else { continue };
        // `read_object` took it as UTF-8 already.
        objects.push(std::str::from_utf8(value).unwrap_or_default());
        for (key, value) in members {
            root.field(key).observe(&value);
        }
    }
    let mut columns = Columns { mode, samples: objects.len(), out: Vec::new() };
    for (key, shape) in &root.fields {
        if let Some(path) = child_path("$", key) {
            columns.node(shape, segment(key), path);
        }
    }
    let mut out = columns.out;
    out.truncate(MAX_COLUMNS);
    unique_names(&mut out);
    count_misfits(&objects, &mut out);
    out
}

/// Counts, per column, the objects the real decoder of the suggested mapping
/// would reject for that column, and keeps the first such value.
fn count_misfits(objects: &[&str], columns: &mut [SuggestedColumn]) {
    if columns.is_empty() {
        return;
    }
    let mapping = Mapping { columns: columns.iter().map(|c| c.column.clone()).collect() };
    let decoder = match CompiledMapping::compile(&mapping) {
        Ok(mapping) => JsonDecoder::new(&mapping),
        // A suggestion is always a valid mapping (the corpus test holds it
        // to that); should one not be, it is shown without misfit counts.
        Err(errors) => {
            tracing::warn!(%errors, "the suggested mapping does not compile");
            return;
        }
    };
    for object in objects {
        let Ok(misfits) = decoder.misfits(object) else { continue };
        for (i, value) in misfits {
            let column = &mut columns[i];
            column.misfits += 1;
            if column.misfit_example.is_none() {
                column.misfit_example = Some(example(value.map_or("null", RawValue::get)));
            }
        }
    }
}

/// One JSON value of a sample, looked at.
struct Value<'a> {
    raw: &'a RawValue,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Null,
    Bool,
    /// The number's text as in the message.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
    /// An array or object nested too deep to look into.
    Deep,
}

/// The members of `value` if it is a JSON object, else `None`.
fn read_object(value: &[u8]) -> Option<Vec<(Cow<'_, str>, Value<'_>)>> {
    let text = std::str::from_utf8(value).ok()?;
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    // Strings are decoded here, not only checked: serde_json lets an unpaired
    // surrogate escape (`"\ud800"`) through a raw value, but not into a string.
    match read(raw, 0).ok()?.kind {
        Kind::Object(members) => Some(members),
        _ => None,
    }
}

fn read(raw: &RawValue, depth: usize) -> Result<Value<'_>, serde_json::Error> {
    let text = raw.get();
    let kind = match text.as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String(serde_json::from_str::<Key>(text)?.0),
        Some(b'[' | b'{') if depth >= MAX_DEPTH => Kind::Deep,
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            Kind::Array(items.into_iter().map(|item| read(item, depth + 1)).collect::<Result<_, _>>()?)
        }
        Some(b'{') => {
            let members = serde_json::Deserializer::from_str(text).deserialize_map(MembersVisitor)?;
            let members = members.into_iter().map(|(key, value)| Ok((key, read(value, depth + 1)?)));
            Kind::Object(members.collect::<Result<_, serde_json::Error>>()?)
        }
        _ => Kind::Number(text),
    };
    Ok(Value { raw, kind })
}

/// An object's members in order; a repeated key keeps its first place and
/// its last value, as the decoder reads it.
struct MembersVisitor;

impl<'a> Visitor<'a> for MembersVisitor {
    type Value = Vec<(Cow<'a, str>, &'a RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Self::Value = Vec::new();
        let mut index: HashMap<Cow<'a, str>, usize> = HashMap::new();
        while let Some((Key(key), value)) = map.next_entry::<Key<'a>, &'a RawValue>()? {
            match index.get(&key) {
                Some(&i) => members[i].1 = value,
                None => {
                    index.insert(key.clone(), members.len());
                    members.push((key, value));
                }
            }
        }
        Ok(members)
    }
}

/// What was seen at one path (or in one list's elements) over all samples.
#[derive(Default)]
struct Shape {
    /// How many values were not null: for a path outside lists, how many samples have it.
    present: usize,
    /// How many values of each kind: they add up to `present`.
    booleans: usize,
    numbers: usize,
    /// By [`Text`], in its order.
    texts: [usize; 5],
    objects: usize,
    arrays: usize,
    /// Values nested too deep to look into, and numbers beyond a double.
    deep: usize,
    /// The widest number kind seen.
    number: Option<Number>,
    epoch: Epoch,
    /// The one form of all strings seen, `Plain` when they differ.
    text: Option<Text>,
    object: Option<Object>,
    /// The elements of all arrays seen.
    array: Option<Box<Shape>>,
    /// The first value seen, as JSON text, cut short.
    example: Option<String>,
}

/// The kind of value a column's type is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Boolean,
    Number,
    Text(Text),
    Object,
    Array,
}

/// Number kinds, narrowest first: a column takes the widest seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Number {
    Int,
    Long,
    /// An integer beyond int64, of at most 38 digits.
    BigInt,
    Double,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Epoch {
    #[default]
    Unseen,
    /// Every number so far is a plausible instant in this unit.
    Unit(TimestampFormat),
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Text {
    Timestamptz = 0,
    Timestamp = 1,
    Date = 2,
    Uuid = 3,
    Plain = 4,
}

#[derive(Default)]
struct Object {
    /// In the order first seen.
    fields: Vec<(String, Shape)>,
    index: HashMap<String, usize>,
}

impl Object {
    fn field(&mut self, key: Cow<'_, str>) -> &mut Shape {
        let i = match self.index.get(key.as_ref()) {
            Some(&i) => i,
            None => {
                self.index.insert(key.to_string(), self.fields.len());
                self.fields.push((key.into_owned(), Shape::default()));
                self.fields.len() - 1
            }
        };
        &mut self.fields[i].1
    }

    /// `struct<…>` of the fields whose keys can be struct field names; `None`
    /// when there is none. `majority`: whether a clear majority may decide a
    /// field's type (not inside lists).
    fn struct_type(&self, majority: bool) -> Option<IcebergType> {
        let fields: Vec<(String, IcebergType)> = self
            .fields
            .iter()
            .filter(|(key, _)| is_identifier(key))
            .map(|(key, shape)| (key.clone(), shape.column_type(None, majority).0))
            .collect();
        (!fields.is_empty()).then_some(IcebergType::Struct(fields))
    }
}

impl Shape {
    fn observe(&mut self, value: &Value) {
        if matches!(value.kind, Kind::Null) {
            return;
        }
        self.present += 1;
        if self.example.is_none() {
            self.example = Some(example(value.raw.get()));
        }
        match &value.kind {
            Kind::Null => {}
            Kind::Bool => self.booleans += 1,
            Kind::Number(text) => self.observe_number(text),
            Kind::String(s) => {
                let kind = text_kind(s);
                self.texts[kind as usize] += 1;
                self.text = Some(match self.text {
                    Some(seen) if seen != kind => Text::Plain,
                    _ => kind,
                });
            }
            Kind::Array(items) => {
                self.arrays += 1;
                let elements = self.array.get_or_insert_with(Box::default);
                for item in items {
                    elements.observe(item);
                }
            }
            Kind::Object(members) => {
                self.objects += 1;
                let object = self.object.get_or_insert_with(Object::default);
                for (key, value) in members {
                    object.field(key.clone()).observe(value);
                }
            }
            Kind::Deep => self.deep += 1,
        }
    }

    fn observe_number(&mut self, text: &str) {
        let value = match text.parse::<f64>() {
            Ok(value) if value.is_finite() => value,
            // Beyond a double: only a string column keeps it.
            _ => {
                self.deep += 1;
                return;
            }
        };
        self.numbers += 1;
        let number = if text.contains(['.', 'e', 'E']) {
            Number::Double
        } else {
            match text.parse::<i64>() {
                Ok(n) if i32::try_from(n).is_ok() => Number::Int,
                Ok(_) => Number::Long,
                Err(_) if text.trim_start_matches('-').len() <= 38 => Number::BigInt,
                Err(_) => Number::Double,
            }
        };
        self.number = self.number.max(Some(number));
        self.epoch = match (self.epoch, epoch_unit(value)) {
            (Epoch::Unseen, Some(unit)) => Epoch::Unit(unit),
            (Epoch::Unit(seen), Some(unit)) if seen == unit => Epoch::Unit(unit),
            _ => Epoch::Not,
        };
    }

    fn kinds(&self) -> usize {
        let strings = self.texts.iter().sum::<usize>();
        [self.booleans, self.numbers, strings, self.objects, self.arrays, self.deep]
            .into_iter()
            .filter(|&n| n > 0)
            .count()
    }

    /// The object, when objects are all that was seen here.
    fn only_object(&self) -> Option<&Object> {
        self.object.as_ref().filter(|_| self.kinds() == 1)
    }

    /// The one kind of every value seen here; strings of different forms are
    /// `Plain`. `None` for a mix of kinds, or nothing but nulls.
    fn only_kind(&self) -> Option<Seen> {
        if self.kinds() != 1 {
            return None;
        }
        Some(match self.text {
            Some(text) => Seen::Text(text),
            None if self.numbers > 0 => Seen::Number,
            None if self.arrays > 0 => Seen::Array,
            None if self.objects > 0 => Seen::Object,
            None if self.booleans > 0 => Seen::Boolean,
            None => return None,
        })
    }

    /// The kind of at least [`MAJORITY_PERCENT`] of the values, if one has a
    /// type other than `string` (see the module docs for why not objects).
    fn majority(&self) -> Option<Seen> {
        let texts = [Text::Timestamptz, Text::Timestamp, Text::Date, Text::Uuid]
            .map(|t| (Seen::Text(t), self.texts[t as usize]));
        [(Seen::Boolean, self.booleans), (Seen::Number, self.numbers), (Seen::Array, self.arrays)]
            .into_iter()
            .chain(texts)
            .find(|&(_, n)| n > 0 && n * 100 >= self.present * MAJORITY_PERCENT)
            .map(|(seen, _)| seen)
    }

    /// The type of a column (`column` is its name) or of a nested field (`None`),
    /// with the column's timestamp format. `majority`: whether a clear majority
    /// may decide where kinds conflict (not inside lists, where the values
    /// counted are elements, not messages).
    fn column_type(&self, column: Option<&str>, majority: bool) -> (IcebergType, Option<TimestampFormat>) {
        let seen = match self.only_kind() {
            Some(Seen::Text(Text::Plain)) | None if majority => self.majority().or(self.only_kind()),
            seen => seen,
        };
        let string = (IcebergType::String, None);
        let Some(seen) = seen else { return string };
        if let (Seen::Number, Some(number)) = (seen, self.number) {
            if let (Some(name), Epoch::Unit(unit)) = (column, self.epoch) {
                if is_time_name(name) {
                    return (IcebergType::Timestamptz, Some(unit));
                }
            }
            let ty = match number {
                Number::Int => IcebergType::Int,
                Number::Long => IcebergType::Long,
                Number::BigInt => IcebergType::Decimal { precision: 38, scale: 0 },
                Number::Double => IcebergType::Double,
            };
            return (ty, None);
        }
        // Nested timestamps are always ISO-8601; only a column carries a format.
        let iso = column.map(|_| TimestampFormat::Iso8601);
        match (seen, &self.array, &self.object) {
            (Seen::Text(Text::Timestamptz), ..) => (IcebergType::Timestamptz, iso),
            (Seen::Text(Text::Timestamp), ..) => (IcebergType::Timestamp, iso),
            (Seen::Text(Text::Date), ..) => (IcebergType::Date, iso),
            (Seen::Text(Text::Uuid), ..) => (IcebergType::Uuid, None),
            (Seen::Array, Some(elements), _) => {
                (IcebergType::List(Box::new(elements.column_type(None, false).0)), None)
            }
            (Seen::Object, _, Some(object)) => (object.struct_type(majority).unwrap_or(IcebergType::String), None),
            (Seen::Boolean, ..) => (IcebergType::Boolean, None),
            _ => string,
        }
    }
}

/// Builds the columns from the merged shapes.
struct Columns {
    mode: NestedMode,
    samples: usize,
    out: Vec<SuggestedColumn>,
}

impl Columns {
    /// The column(s) for the value at `path`.
    fn node(&mut self, shape: &Shape, name: String, path: String) {
        match (shape.only_object(), self.mode) {
            (Some(object), NestedMode::Flatten) => {
                for (key, child) in &object.fields {
                    if let Some(child_path) = child_path(&path, key) {
                        self.node(child, format!("{name}_{}", segment(key)), child_path);
                    }
                }
            }
            (Some(object), NestedMode::Struct) => match object.struct_type(true) {
                Some(ty) if ty.to_string().len() <= MAX_TYPE_LEN => {
                    self.push(shape, name.clone(), path.clone(), ty, None);
                    self.outside_struct(object, &name, &path);
                }
                // The whole object as JSON text: nothing is left outside.
                Some(_) => self.push(shape, name, path, IcebergType::String, None),
                None => self.outside_struct(object, &name, &path),
            },
            (None, _) => {
                let (ty, format) = shape.column_type(Some(&name), true);
                self.push(shape, name, path, ty, format);
            }
        }
    }

    /// Columns for what the struct of `object` cannot hold: fields whose keys
    /// are not identifiers, at any depth of nested structs.
    fn outside_struct(&mut self, object: &Object, name: &str, path: &str) {
        for (key, child) in &object.fields {
            let Some(child_path) = child_path(path, key) else { continue };
            let child_name = format!("{name}_{}", segment(key));
            if !is_identifier(key) {
                self.node(child, child_name, child_path);
            } else if let Some(inner) = child.only_object() {
                if inner.struct_type(true).is_some() {
                    self.outside_struct(inner, &child_name, &child_path);
                }
            }
        }
    }

    fn push(
        &mut self,
        shape: &Shape,
        name: String,
        path: String,
        ty: IcebergType,
        timestamp_format: Option<TimestampFormat>,
    ) {
        let mut column_type = ty.to_string();
        if column_type.len() > MAX_TYPE_LEN {
            column_type = IcebergType::String.to_string();
        }
        let column =
            ColumnMapping { name, column_type, path, nullable: shape.present < self.samples, timestamp_format };
        self.out.push(SuggestedColumn { column, example: shape.example.clone(), misfits: 0, misfit_example: None });
    }
}

/// `path.key`, when a path can name the key and is not too long.
fn child_path(path: &str, key: &str) -> Option<String> {
    if key.is_empty() || key.contains(['.', '[', ']']) {
        return None;
    }
    let path = format!("{path}.{key}");
    (path.len() <= MAX_PATH_LEN).then_some(path)
}

/// A key as part of a column name: kept when it already is an identifier,
/// else snake_case of its ASCII letters and digits (`Unit Price` → `unit_price`,
/// `customerID` → `customer_id`), leading underscores kept; `field` when nothing is left.
fn segment(key: &str) -> String {
    if is_identifier(key) {
        return key.to_string();
    }
    let chars: Vec<char> = key.chars().collect();
    let lead = chars.iter().take_while(|&&c| c == '_').count();
    let mut out = "_".repeat(lead);
    let mut gap = false;
    for (i, &c) in chars.iter().enumerate().skip(lead) {
        if !c.is_ascii_alphanumeric() {
            gap = true;
            continue;
        }
        if c.is_ascii_uppercase() && i > lead {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            gap |= prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower);
        }
        if gap && out.len() > lead {
            out.push('_');
        }
        gap = false;
        out.push(c.to_ascii_lowercase());
    }
    if out.is_empty() {
        out.push_str("field");
    }
    out
}

/// Makes every name a valid identifier (`2x` → `_2x`, at most 128 characters)
/// and unique: a repeat gets `_2`, `_3`, … in column order.
fn unique_names(columns: &mut [SuggestedColumn]) {
    let mut taken = HashSet::new();
    for column in columns {
        let mut base = std::mem::take(&mut column.column.name);
        if base.starts_with(|c: char| c.is_ascii_digit()) {
            base.insert(0, '_');
        }
        // Names are ASCII here, so any byte index is a character boundary.
        base.truncate(MAX_NAME_LEN);
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(&name) {
            n += 1;
            let suffix = format!("_{n}");
            name = format!("{}{suffix}", &base[..base.len().min(MAX_NAME_LEN - suffix.len())]);
        }
        taken.insert(name.clone());
        column.column.name = name;
    }
}

fn is_time_name(name: &str) -> bool {
    matches!(name, "ts" | "time" | "timestamp")
        || ["_at", "_ts", "_time", "_timestamp"].iter().any(|suffix| name.ends_with(suffix))
}

/// The epoch unit in which `value` is an instant of the years 2000 to 2099.
fn epoch_unit(value: f64) -> Option<TimestampFormat> {
    const FROM: f64 = 946_684_800.0; // 2000-01-01T00:00:00Z in seconds
    const TO: f64 = 4_102_444_800.0; // 2100-01-01T00:00:00Z
    [(1.0, TimestampFormat::EpochSeconds), (1e3, TimestampFormat::EpochMillis), (1e6, TimestampFormat::EpochMicros)]
        .into_iter()
        .find(|(scale, _)| (FROM * scale..TO * scale).contains(&value))
        .map(|(_, unit)| unit)
}

/// What a string holds, read exactly as the decoder reads `timestamptz`,
/// `timestamp`, `date` and `uuid` columns (see `formats/exact.rs`), but only in
/// their usual written forms.
fn text_kind(s: &str) -> Text {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let dated = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    if dated && b.len() == 10 {
        if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
            return Text::Date;
        }
    } else if dated && matches!(b[10], b'T' | b't' | b' ') {
        let with_offset =
            DateTime::parse_from_rfc3339(s).or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"));
        if with_offset.is_ok() {
            return Text::Timestamptz;
        }
        let without_offset = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"));
        if without_offset.is_ok() {
            return Text::Timestamp;
        }
    } else if b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-') && uuid::Uuid::try_parse(s).is_ok() {
        return Text::Uuid;
    }
    Text::Plain
}

/// A value's JSON text, cut to [`EXAMPLE_CHARS`] characters.
fn example(text: &str) -> String {
    match text.char_indices().nth(EXAMPLE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::json::convert;
    use crate::mapping::Ty;

    #[test]
    fn segments() {
        for (key, want) in [
            ("store", "store"),
            ("unit__price", "unit__price"),
            ("_id", "_id"),
            ("Unit Price", "unit_price"),
            ("customerID", "customer_id"),
            ("HTTPStatus", "http_status"),
            ("sku2Name", "sku2_name"),
            ("__Meta", "__meta"),
            ("price ($)", "price"),
            ("Größe", "gr_e"),
            ("2x", "2x"),
            ("名前", "field"),
            ("a-b.c", "a_b_c"),
        ] {
            assert_eq!(segment(key), want, "{key}");
        }
    }

    #[test]
    fn names_are_identifiers_and_unique() {
        let column = |name: &str| SuggestedColumn {
            column: ColumnMapping {
                name: name.into(),
                column_type: "string".into(),
                path: "$.x".into(),
                nullable: true,
                timestamp_format: None,
            },
            example: None,
            misfits: 0,
            misfit_example: None,
        };
        let long = "x".repeat(200);
        let mut columns: Vec<_> = ["a", "a", "a_2", "2x", "_2x", &long, &long].into_iter().map(column).collect();
        unique_names(&mut columns);
        let names: Vec<&str> = columns.iter().map(|c| c.column.name.as_str()).collect();
        let cut = "x".repeat(128);
        let cut_2 = format!("{}_2", "x".repeat(126));
        assert_eq!(names, ["a", "a_2", "a_2_2", "_2x", "_2x_2", cut.as_str(), cut_2.as_str()]);
    }

    #[test]
    fn text_kinds_agree_with_the_decoder_forms() {
        for (s, want) in [
            ("2026-11-27T10:02:03Z", Text::Timestamptz),
            ("2026-11-27T10:02:03.123456+01:00", Text::Timestamptz),
            ("2026-11-27T10:02:03+0100", Text::Timestamptz),
            ("2026-11-27 10:02:03+01:00", Text::Timestamptz),
            // The decoder reads neither form with this one: not a timestamp.
            ("2026-11-27 10:02:03+0100", Text::Plain),
            ("2026-11-27T10:02:03", Text::Timestamp),
            ("2026-11-27 10:02:03.5", Text::Timestamp),
            ("2026-11-27", Text::Date),
            ("2026-02-30", Text::Plain),
            ("2026-1-5", Text::Plain),
            ("2026-11-27T25:00:00Z", Text::Plain),
            ("67e55044-10b1-426f-9247-bb680e5fe0c8", Text::Uuid),
            ("67e5504410b1426f9247bb680e5fe0c8", Text::Plain),
            ("67e55044-10b1-426f-9247-bb680e5fe0cz", Text::Plain),
            ("", Text::Plain),
            ("12.50", Text::Plain),
        ] {
            assert_eq!(text_kind(s), want, "{s}");
            // What is suggested, the decoder reads; a timestamp-like string
            // that is not suggested as one, it does not read as one.
            let json = serde_json::to_string(s).unwrap();
            let raw: &RawValue = serde_json::from_str(&json).unwrap();
            let decodes = |ty: Ty| convert(&ty, raw).is_ok();
            let iso = TimestampFormat::Iso8601;
            let timestamps = [decodes(Ty::Timestamptz(iso)), decodes(Ty::Timestamp(iso))];
            match want {
                Text::Timestamptz => assert_eq!(timestamps, [true, true], "{s}"),
                Text::Timestamp => assert_eq!(timestamps, [false, true], "{s}"),
                Text::Date => assert!(decodes(Ty::Date(iso)), "{s}"),
                Text::Uuid => assert!(decodes(Ty::Uuid), "{s}"),
                Text::Plain => assert_eq!(timestamps, [false, false], "{s}"),
            }
        }
    }

    #[test]
    fn epoch_units() {
        assert_eq!(epoch_unit(946_684_800.0), Some(TimestampFormat::EpochSeconds));
        assert_eq!(epoch_unit(1_700_000_000.25), Some(TimestampFormat::EpochSeconds));
        assert_eq!(epoch_unit(1_700_000_000_000.0), Some(TimestampFormat::EpochMillis));
        assert_eq!(epoch_unit(1_700_000_000_000_000.0), Some(TimestampFormat::EpochMicros));
        assert_eq!(epoch_unit(946_684_799.0), None);
        assert_eq!(epoch_unit(4_102_444_800.0), None);
        assert_eq!(epoch_unit(1_700_000_000_000_000_000.0), None);
        assert_eq!(epoch_unit(-1_700_000_000.0), None);
    }

    #[test]
    fn examples_are_cut() {
        assert_eq!(example(r#""short""#), r#""short""#);
        let long = format!("\"{}\"", "é".repeat(100));
        assert_eq!(example(&long), format!("\"{}…", "é".repeat(79)));
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_last_value() {
        let value: &[u8] = br#"{"a":"x","b":1,"a":2}"#;
        let columns = suggest(&[value], NestedMode::Flatten);
        let got: Vec<(&str, &str)> =
            columns.iter().map(|c| (c.column.name.as_str(), c.column.column_type.as_str())).collect();
        assert_eq!(got, [("a", "int"), ("b", "int")]);
    }
}
