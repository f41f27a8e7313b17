//! JSON messages: each value is one JSON object, parsed once with
//! `serde_json`, borrowing: only the values the mapping's paths reach are
//! looked at, as raw JSON text, and numbers are read from that text, so
//! decimals and long integers are exact (no trip through `f64`).
//!
//! # How JSON values become column values
//!
//! | column type | accepted JSON | notes |
//! | --- | --- | --- |
//! | `boolean` | `true` / `false` | |
//! | `int`, `long` | integers | `3.0` and `3e2` are accepted (they are integers); `3.5` is `wrong_type`; outside int32/int64 is `out_of_range`; strings are `wrong_type` |
//! | `float`, `double` | numbers | rounded to nearest; a number beyond the type's range is `out_of_range` |
//! | `decimal(p,s)` | numbers or numeric strings (`"12.50"`, `"-1e3"`) | exact: more than `s` non-zero fractional digits or more than `p` digits is `out_of_range`, never rounded |
//! | `string` | strings | any other JSON value is stored as its JSON text exactly as it appears in the message (`12.50` → `"12.50"`, `{"a": 1}` → `"{\"a\": 1}"`) |
//! | `uuid` | strings in any form the `uuid` crate reads (hyphenated, simple, braced, urn) | stored as 16 big-endian bytes |
//! | `date` | `"YYYY-MM-DD"`; with an epoch `timestamp_format`, the UTC date of that instant | |
//! | `time` | `"HH:MM:SS"` with optional fraction | |
//! | `timestamptz` | RFC 3339 / ISO-8601 with `Z` or an offset (a `T` or a space between date and time) | stored in UTC; a string without an offset is `wrong_type` |
//! | `timestamp` | ISO-8601 without an offset | a string with an offset is converted to UTC and stored without it |
//! | `binary` | base64 strings (standard alphabet, padding optional) | |
//! | `list<T>` | arrays | `null` elements are null |
//! | `map<K,V>` | objects | keys are read as `K` from their text (`"7"` for a `long` key); a repeated key keeps its last value |
//! | `struct<…>` | objects | absent fields are null; unknown fields are ignored |
//!
//! Timestamps keep microseconds: sub-microsecond digits are dropped (towards
//! the past). With `timestamp_format` `epoch_seconds`, `epoch_millis` or
//! `epoch_micros` a timestamp or date column reads a JSON number or a numeric
//! string (fractions allowed, e.g. `1700000000.25` seconds); an ISO string is
//! then `wrong_type`, and with the default ISO-8601 format a number is
//! `wrong_type`. Nested timestamps (in lists, maps, structs) are always
//! ISO-8601, because a column's `timestamp_format` applies to the column.
//!
//! A path that does not reach a value (a missing field, an index past the end
//! of an array, a field of something that is not an object) is absent, the
//! same as `null`: the column is null, or, when the column is not nullable, the
//! message is rejected as `missing_required`. Nested struct fields, list
//! elements and map values are always optional.

mod convert;
mod paths;

use icehouse_api::pipelines::{CompiledMapping, JsonPath};
use serde_json::value::RawValue;

pub(crate) use self::convert::convert;
pub(crate) use self::paths::Key;
use self::paths::PathTree;
use super::{reborrow, Column};
use crate::mapping::{Cell, ErrorKind, Rejection, Stage};

/// Reads JSON objects into cells, one per column of a compiled mapping.
pub(crate) struct JsonDecoder {
    columns: Vec<Column>,
    paths: PathTree,
    /// Scratch space of [`decode`](Self::decode), kept empty between messages.
    slots: Vec<Option<&'static RawValue>>,
}

impl JsonDecoder {
    pub(crate) fn new(mapping: &CompiledMapping) -> JsonDecoder {
        let columns: Vec<Column> = mapping.columns().iter().map(Column::new).collect();
        let paths: Vec<&JsonPath> = mapping.columns().iter().map(|c| &c.path).collect();
        let slots = Vec::with_capacity(columns.len());
        JsonDecoder { paths: PathTree::new(&paths), columns, slots }
    }

    /// See [`FormatDecoder::decode`](super::FormatDecoder::decode).
    pub(crate) fn decode<'m>(&mut self, value: &'m [u8], cells: &mut Vec<Cell<'m>>) -> Result<(), Rejection> {
        let decode = |kind, message: String| Rejection::new(Stage::Decode, kind, message);
        let text = std::str::from_utf8(value)
            .map_err(|e| decode(ErrorKind::InvalidUtf8, format!("the value is not UTF-8: {e}")))?;
        // serde_json skips over the strings it does not decode, so a lone
        // surrogate escape (`"\ud800"`, valid JSON syntax but no text) would
        // only fail when a column reads it: check such rare messages in full.
        if text.contains("\\u")
            && (text.contains("\\ud") || text.contains("\\uD"))
            && serde_json::from_str::<serde_json::Value>(text).is_err()
        {
            return Err(decode(ErrorKind::InvalidJson, "the value has an escape that is not valid Unicode".into()));
        }
        let mut slots = reborrow(std::mem::take(&mut self.slots));
        slots.resize(self.columns.len(), None);
        let outcome = self.paths.resolve(text, &mut slots).map_err(|message| decode(ErrorKind::InvalidJson, message));
        let outcome = outcome.and_then(|()| {
            for (column, raw) in self.columns.iter().zip(&slots) {
                cells.push(convert_column(column, *raw)?);
            }
            Ok(())
        });
        self.slots = reborrow(slots);
        outcome
    }

    /// The columns the JSON object `text` does not fit, by index, each with
    /// the value at its path: what [`decode`](Self::decode) would reject the
    /// message for, every column instead of the first. `Err` when `text` is
    /// not a JSON object.
    pub(crate) fn misfits<'a>(&self, text: &'a str) -> Result<Vec<(usize, Option<&'a RawValue>)>, String> {
        let mut slots = vec![None; self.columns.len()];
        self.paths.resolve(text, &mut slots)?;
        Ok(self
            .columns
            .iter()
            .zip(slots)
            .enumerate()
            .filter(|(_, (column, raw))| convert_column(column, *raw).is_err())
            .map(|(i, (_, raw))| (i, raw))
            .collect())
    }
}

/// The cell of the value a column's path reached (`None`: reached nothing).
fn convert_column<'a>(column: &Column, raw: Option<&'a RawValue>) -> Result<Cell<'a>, Rejection> {
    match raw {
        Some(raw) if !paths::is_null(raw) => convert(&column.ty, raw).map_err(|fail| column.rejection(fail)),
        raw => column.null(raw.is_some()),
    }
}
