//! The value model between a decoder and the Arrow builders: a column's
//! type as a decoder needs it ([`Ty`]) and one converted value ([`Cell`]).
//! Every format converts into cells; the builders and the dead-letter rows
//! take them, so nothing here knows which format a value came from.

use std::borrow::Cow;
use std::fmt;

use icehouse_api::pipelines::{IcebergType, TimestampFormat};

/// A column type with what converting into it needs to know.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ty {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u8, scale: u8 },
    String,
    Uuid,
    Date(TimestampFormat),
    Time,
    Timestamp(TimestampFormat),
    Timestamptz(TimestampFormat),
    Binary,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Struct { names: Vec<String>, types: Vec<Ty> },
}

impl Ty {
    /// `format` is the column's `timestamp_format`; nested types are always ISO-8601.
    pub(crate) fn new(ty: &IcebergType, format: Option<TimestampFormat>) -> Ty {
        let format = format.unwrap_or(TimestampFormat::Iso8601);
        match ty {
            IcebergType::Boolean => Ty::Boolean,
            IcebergType::Int => Ty::Int,
            IcebergType::Long => Ty::Long,
            IcebergType::Float => Ty::Float,
            IcebergType::Double => Ty::Double,
            IcebergType::Decimal { precision, scale } => Ty::Decimal { precision: *precision, scale: *scale },
            IcebergType::String => Ty::String,
            IcebergType::Uuid => Ty::Uuid,
            IcebergType::Date => Ty::Date(format),
            IcebergType::Time => Ty::Time,
            IcebergType::Timestamp => Ty::Timestamp(format),
            IcebergType::Timestamptz => Ty::Timestamptz(format),
            IcebergType::Binary => Ty::Binary,
            IcebergType::List(element) => Ty::List(Box::new(Ty::new(element, None))),
            IcebergType::Map(key, value) => Ty::Map(Box::new(Ty::new(key, None)), Box::new(Ty::new(value, None))),
            IcebergType::Struct(fields) => Ty::Struct {
                names: fields.iter().map(|(name, _)| name.clone()).collect(),
                types: fields.iter().map(|(_, ty)| Ty::new(ty, None)).collect(),
            },
        }
    }

    /// The type as an error message says what it expected.
    pub(crate) fn expected(&self) -> String {
        let epoch = |format: &TimestampFormat| match format {
            TimestampFormat::Iso8601 => "",
            TimestampFormat::EpochSeconds => " (epoch seconds)",
            TimestampFormat::EpochMillis => " (epoch millis)",
            TimestampFormat::EpochMicros => " (epoch micros)",
        };
        match self {
            Ty::Binary => "binary (base64)".into(),
            Ty::Date(format) | Ty::Timestamp(format) | Ty::Timestamptz(format) => format!("{self}{}", epoch(format)),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Boolean => f.write_str("boolean"),
            Ty::Int => f.write_str("int"),
            Ty::Long => f.write_str("long"),
            Ty::Float => f.write_str("float"),
            Ty::Double => f.write_str("double"),
            Ty::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Ty::String => f.write_str("string"),
            Ty::Uuid => f.write_str("uuid"),
            Ty::Date(_) => f.write_str("date"),
            Ty::Time => f.write_str("time"),
            Ty::Timestamp(_) => f.write_str("timestamp"),
            Ty::Timestamptz(_) => f.write_str("timestamptz"),
            Ty::Binary => f.write_str("binary"),
            Ty::List(element) => write!(f, "list<{element}>"),
            Ty::Map(key, value) => write!(f, "map<{key},{value}>"),
            Ty::Struct { names, types } => {
                f.write_str("struct<")?;
                for (i, (name, ty)) in names.iter().zip(types).enumerate() {
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

/// One converted value, ready to append: borrowed from the message where it can be.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    /// int, date (days since the epoch)
    I32(i32),
    /// long, time (microseconds since midnight), timestamps (microseconds since the epoch)
    I64(i64),
    F32(f32),
    F64(f64),
    /// decimal, unscaled
    I128(i128),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// big-endian, as Iceberg stores a uuid
    Uuid([u8; 16]),
    List(Vec<Cell<'a>>),
    Map(Vec<(Cell<'a>, Cell<'a>)>),
    Struct(Vec<Cell<'a>>),
}
