//! Message formats: how the value of a Kafka message becomes one row of its
//! pipeline's table, or a typed rejection.
//!
//! A [`RowDecoder`] is the same for every format: it checks the value's size,
//! asks the pipeline's format to convert the value into one [`Cell`] per
//! column, and appends the cells to the Arrow builders only when every column
//! converted, so a message is a whole row or a rejection, never half a row.
//! A format is the part in between ([`FormatDecoder`]): it finds each
//! column's value in the message by the column's path and converts it.
//! JSON ([`json`]) is the only format so far; Avro and Protobuf will be
//! arms of [`FormatDecoder`] beside it.
//!
//! The conversions of numbers and strings into column values are not the
//! format's: every format hands its numbers (by their decimal text) and its
//! strings to [`exact`], so a decimal is never rounded and a timestamp reads
//! the same way whatever format carried it. What a format adds is what is its
//! own, such as JSON's base64 for binary columns.
//!
//! Everything here takes a [`CompiledMapping`]: the mapping's type strings
//! and paths are parsed once, when the mapping is compiled.

mod decoder;
pub(crate) mod exact;
pub mod json;

pub mod bench;

pub use decoder::RowDecoder;
use icehouse_api::pipelines::{CompiledColumn, CompiledMapping, MessageFormat};

use self::exact::Fail;
use crate::mapping::{Cell, ErrorKind, Rejection, Stage, Ty};

/// The part of a [`RowDecoder`] that knows the message format.
pub(crate) enum FormatDecoder {
    Json(json::JsonDecoder),
}

impl FormatDecoder {
    pub(crate) fn new(format: MessageFormat, mapping: &CompiledMapping) -> FormatDecoder {
        match format {
            MessageFormat::Json => FormatDecoder::Json(json::JsonDecoder::new(mapping)),
        }
    }

    /// Converts one message value (not empty, not too large) into one cell
    /// per column, in column order, pushed onto `cells` (empty on entry); on a
    /// rejection, what `cells` holds is to be dropped.
    pub(crate) fn decode<'m>(&mut self, value: &'m [u8], cells: &mut Vec<Cell<'m>>) -> Result<(), Rejection> {
        match self {
            FormatDecoder::Json(json) => json.decode(value, cells),
        }
    }
}

/// One column as every format's decoder sees it.
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) nullable: bool,
    pub(crate) ty: Ty,
}

impl Column {
    pub(crate) fn new(column: &CompiledColumn) -> Column {
        Column {
            name: column.name.clone(),
            path: column.path_text.clone(),
            nullable: column.nullable,
            ty: Ty::new(&column.ty, column.timestamp_format),
        }
    }

    /// The cell of a value that is absent (`null` false) or null: a null
    /// cell, or a `missing_required` rejection when the column is required.
    pub(crate) fn null<'a>(&self, null: bool) -> Result<Cell<'a>, Rejection> {
        if self.nullable {
            return Ok(Cell::Null);
        }
        let what = if null { "null" } else { "absent" };
        let message = format!("column `{}` ({}): required, but {what}", self.name, self.path);
        Err(Rejection::new(Stage::Map, ErrorKind::MissingRequired, message))
    }

    /// The rejection of a value of this column that did not convert.
    pub(crate) fn rejection(&self, fail: Fail) -> Rejection {
        let message = format!("column `{}` ({}{}): {}", self.name, self.path, fail.path_suffix(), fail.detail);
        Rejection::new(Stage::Map, fail.kind, message)
    }
}

/// The same vector, emptied, for values of another lifetime: collecting an
/// emptied `Vec` into one of a type of the same layout reuses its buffer, so
/// scratch vectors of borrowed values cost no allocation per message.
pub(crate) fn reborrow<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}
