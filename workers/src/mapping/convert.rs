//! Converting one JSON value to one column value, exactly, or saying why not.
//!
//! Converters only look: the cells they return borrow from the message, and
//! the decoder appends them to Arrow builders once every column of the row
//! has converted.

use std::borrow::Cow;
use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use icehouse_api::pipelines::{IcebergType, TimestampFormat};
use serde_json::value::RawValue;

use super::json::{self, clip, Json};
use super::ErrorKind;

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
    fn expected(&self) -> String {
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

/// Why a value did not convert, and where below the column's own path.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
    /// Innermost first.
    at: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    Field(String),
    Index(usize),
}

impl Fail {
    fn wrong_type(ty: &Ty, found: &Json) -> Fail {
        Fail::new(ErrorKind::WrongType, format!("expected {}, found {}", ty.expected(), found.describe()))
    }

    fn out_of_range(detail: String) -> Fail {
        Fail::new(ErrorKind::OutOfRange, detail)
    }

    fn new(kind: ErrorKind, detail: String) -> Fail {
        Fail { kind, detail, at: Vec::new() }
    }

    fn within(mut self, step: Step) -> Fail {
        self.at.push(step);
        self
    }

    /// Where below the column's path the failing value is, e.g. `.address.zip` or `[2]`.
    pub(crate) fn path_suffix(&self) -> String {
        let mut out = String::new();
        for step in self.at.iter().rev() {
            match step {
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Field(name) if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Field(name) => out.push_str(&format!("[{:?}]", clip(name))),
            }
        }
        out
    }
}

/// Converts a present value (JSON `null` becomes a null cell).
pub(crate) fn convert<'a>(ty: &Ty, raw: &'a RawValue) -> Result<Cell<'a>, Fail> {
    let value = Json::of(raw);
    match (ty, value) {
        (_, Json::Null) => Ok(Cell::Null),
        (Ty::List(element), Json::Array) => {
            let items = json::elements(raw);
            let mut cells = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                cells.push(convert(element, item).map_err(|f| f.within(Step::Index(i)))?);
            }
            Ok(Cell::List(cells))
        }
        (Ty::Map(key_ty, value_ty), Json::Object) => {
            let members = json::members(raw);
            let mut entries = Vec::with_capacity(members.len());
            for (key, value) in members {
                let step = || Step::Field(key.to_string());
                let value = convert(value_ty, value).map_err(|f| f.within(step()))?;
                let key = map_key(key_ty, key.clone()).map_err(|f| f.within(step()))?;
                entries.push((key, value));
            }
            Ok(Cell::Map(entries))
        }
        (Ty::Struct { names, types }, Json::Object) => {
            let values = json::fields(raw, names);
            let mut cells = Vec::with_capacity(types.len());
            for ((name, ty), value) in names.iter().zip(types).zip(values) {
                cells.push(match value {
                    None => Cell::Null,
                    Some(value) => convert(ty, value).map_err(|f| f.within(Step::Field(name.clone())))?,
                });
            }
            Ok(Cell::Struct(cells))
        }
        (Ty::String, Json::String(s)) => Ok(Cell::Str(s)),
        // Documented choice: a number, boolean, array or object mapped to a
        // string column is kept as its JSON text, exactly as in the message.
        (Ty::String, _) => Ok(Cell::Str(Cow::Borrowed(raw.get()))),
        (ty, value) => scalar(ty, value),
    }
}

/// A map key, from the text of a JSON object's key.
fn map_key<'a>(ty: &Ty, key: Cow<'a, str>) -> Result<Cell<'a>, Fail> {
    let numeric = matches!(ty, Ty::Int | Ty::Long | Ty::Float | Ty::Double);
    if numeric && scaled_integer(&key, 0, 38, true) == Err(NumError::Syntax) {
        return Err(Fail::wrong_type(ty, &Json::String(key)));
    }
    match ty {
        Ty::Int => Ok(Cell::I32(integer(&key, ty, &Json::String(key.clone()))? as i32)),
        Ty::Long => Ok(Cell::I64(integer(&key, ty, &Json::String(key.clone()))?)),
        Ty::Float => float(&key, ty, &Json::String(key.clone())).map(|v| Cell::F32(v as f32)),
        Ty::Double => float(&key, ty, &Json::String(key.clone())).map(Cell::F64),
        Ty::Boolean => match &*key {
            "true" => Ok(Cell::Bool(true)),
            "false" => Ok(Cell::Bool(false)),
            _ => Err(Fail::wrong_type(ty, &Json::String(key))),
        },
        Ty::String => Ok(Cell::Str(key)),
        _ => scalar(ty, Json::String(key)),
    }
}

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn scalar<'a>(ty: &Ty, value: Json<'a>) -> Result<Cell<'a>, Fail> {
    use TimestampFormat::Iso8601;
    let found = &value;
    match (ty, &value) {
        (Ty::Boolean, Json::Bool(b)) => Ok(Cell::Bool(*b)),
        (Ty::Int, Json::Number(t)) => Ok(Cell::I32(integer(t, ty, found)? as i32)),
        (Ty::Long, Json::Number(t)) => Ok(Cell::I64(integer(t, ty, found)?)),
        (Ty::Float, Json::Number(t)) => Ok(Cell::F32(float32(t, ty)?)),
        (Ty::Double, Json::Number(t)) => Ok(Cell::F64(float(t, ty, found)?)),
        (Ty::Decimal { precision, scale }, Json::Number(t)) => decimal(t, *precision, *scale, ty, found),
        (Ty::Decimal { precision, scale }, Json::String(t)) => decimal(t, *precision, *scale, ty, found),
        (Ty::Uuid, Json::String(s)) => match uuid::Uuid::try_parse(s) {
            Ok(u) => Ok(Cell::Uuid(*u.as_bytes())),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        (Ty::Binary, Json::String(s)) => match BASE64.decode(s.as_bytes()) {
            Ok(bytes) => Ok(Cell::Bytes(Cow::Owned(bytes))),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        (Ty::Date(Iso8601), Json::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(date) => Ok(Cell::I32(date.num_days_from_ce() - UNIX_EPOCH_FROM_CE)),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        (Ty::Time, Json::String(s)) => time(s, ty, found).map(Cell::I64),
        (Ty::Timestamptz(Iso8601), Json::String(s)) => match with_offset(s) {
            Some(micros) => Ok(Cell::I64(micros)),
            None if without_offset(s).is_some() => Err(Fail::new(
                ErrorKind::WrongType,
                format!("expected timestamptz, found string {:?} without a UTC offset or Z", clip(s)),
            )),
            None => Err(Fail::wrong_type(ty, found)),
        },
        (Ty::Timestamp(Iso8601), Json::String(s)) => match without_offset(s).or_else(|| with_offset(s)) {
            Some(micros) => Ok(Cell::I64(micros)),
            None => Err(Fail::wrong_type(ty, found)),
        },
        (Ty::Date(format) | Ty::Timestamp(format) | Ty::Timestamptz(format), Json::Number(t)) if *format != Iso8601 => {
            epoch(t, *format, ty, found)
        }
        (Ty::Date(format) | Ty::Timestamp(format) | Ty::Timestamptz(format), Json::String(t)) if *format != Iso8601 => {
            epoch(t, *format, ty, found)
        }
        _ => Err(Fail::wrong_type(ty, found)),
    }
}

fn integer(text: &str, ty: &Ty, found: &Json) -> Result<i64, Fail> {
    let value: i128 = match text.parse::<i64>() {
        Ok(v) => v.into(),
        // 3.0 and 3e2 are integers; 3.5 is not.
        Err(_) => match scaled_integer(text, 0, 38, false) {
            Ok(v) => v,
            Err(NumError::Syntax | NumError::Fraction) => return Err(Fail::wrong_type(ty, found)),
            Err(NumError::Overflow) => i128::MAX,
        },
    };
    let (min, max) = match ty {
        Ty::Int => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    if value < min || value > max {
        return Err(Fail::out_of_range(format!("{} is out of range for {ty}", clip(text))));
    }
    Ok(value as i64)
}

fn float(text: &str, ty: &Ty, found: &Json) -> Result<f64, Fail> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(Fail::out_of_range(format!("{} is out of range for {ty}", clip(text)))),
        Err(_) => Err(Fail::wrong_type(ty, found)),
    }
}

/// Parsed straight to f32, so the value is rounded once.
fn float32(text: &str, ty: &Ty) -> Result<f32, Fail> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Fail::out_of_range(format!("{} is out of range for {ty}", clip(text)))),
    }
}

fn decimal<'a>(text: &str, precision: u8, scale: u8, ty: &Ty, found: &Json) -> Result<Cell<'a>, Fail> {
    match scaled_integer(text, scale.into(), precision.into(), false) {
        Ok(v) => Ok(Cell::I128(v)),
        Err(NumError::Syntax) => Err(Fail::wrong_type(ty, found)),
        Err(NumError::Fraction) => Err(Fail::out_of_range(format!(
            "{} has more than {scale} decimal places for {ty} (values are never rounded)",
            clip(text)
        ))),
        Err(NumError::Overflow) => Err(Fail::out_of_range(format!("{} does not fit {ty}", clip(text)))),
    }
}

fn time(s: &str, ty: &Ty, found: &Json) -> Result<i64, Fail> {
    let time = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").map_err(|_| Fail::wrong_type(ty, found))?;
    if time.nanosecond() >= 1_000_000_000 {
        return Err(Fail::out_of_range(format!("{:?} is a leap second, which time cannot hold", clip(s))));
    }
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1_000))
}

/// Microseconds since the epoch of an ISO-8601 / RFC 3339 timestamp with an offset.
fn with_offset(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Microseconds since the epoch of an ISO-8601 timestamp without an offset, read as UTC.
fn without_offset(s: &str) -> Option<i64> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// A date or timestamp from an epoch number (or numeric string).
fn epoch<'a>(text: &str, format: TimestampFormat, ty: &Ty, found: &Json) -> Result<Cell<'a>, Fail> {
    let micros = epoch_micros(text, format, ty, found)?;
    Ok(match ty {
        Ty::Date(_) => Cell::I32(micros.div_euclid(MICROS_PER_DAY) as i32),
        _ => Cell::I64(micros),
    })
}

/// Microseconds since the epoch of an epoch number in `format`'s unit;
/// digits below a microsecond are dropped (towards the past).
fn epoch_micros(text: &str, format: TimestampFormat, ty: &Ty, found: &Json) -> Result<i64, Fail> {
    let scale = match format {
        TimestampFormat::EpochSeconds => 6,
        TimestampFormat::EpochMillis => 3,
        TimestampFormat::EpochMicros | TimestampFormat::Iso8601 => 0,
    };
    let out_of_range = || Fail::out_of_range(format!("{} is outside the range of {ty}", clip(text)));
    match scaled_integer(text, scale, 38, true) {
        Ok(micros) => i64::try_from(micros)
            .ok()
            .filter(|&micros| DateTime::from_timestamp_micros(micros).is_some())
            .ok_or_else(out_of_range),
        Err(NumError::Syntax) => Err(Fail::wrong_type(ty, found)),
        Err(NumError::Overflow | NumError::Fraction) => Err(out_of_range()),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NumError {
    /// Not a decimal number.
    Syntax,
    /// Non-zero digits below 10^-scale.
    Fraction,
    /// More than `max_digits` digits at the given scale.
    Overflow,
}

/// `text` (a JSON number, or the same with a `+` sign, leading zeros or
/// without digits before the point) times 10^`scale`, as an integer of at most
/// `max_digits` (≤ 38) digits. Digits below 10^-`scale` must be zeros, unless
/// `floor`, which rounds towards negative infinity instead.
///
/// Exact by construction: no floating point. `arrow_cast::parse_decimal` is
/// not used because it silently truncates fractional digits past the scale
/// (it reads `1.239` as `1.23` for scale 2), which would lose money.
pub(crate) fn scaled_integer(text: &str, scale: u32, max_digits: u32, floor: bool) -> Result<i128, NumError> {
    let bytes = text.as_bytes();
    let (negative, unsigned) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mantissa, exponent) = match unsigned.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(e) => (&unsigned[..e], exponent(&unsigned[e + 1..])?),
        None => (unsigned, 0),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(p) if p + 1 < mantissa.len() => (&mantissa[..p], &mantissa[p + 1..]),
        Some(_) => return Err(NumError::Syntax),
        None => (mantissa, &[][..]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(NumError::Syntax);
    }
    // value = digits × 10^(exponent − frac.len()) = digits × 10^shift × 10^-scale
    let shift = exponent - frac.len() as i64 + i64::from(scale);
    let kept = (int.len() + frac.len()) as i64 + shift.min(0);
    let (mut value, mut significant, mut remainder) = (0i128, 0u32, false);
    for (i, &digit) in int.iter().chain(frac).enumerate() {
        let digit = digit - b'0';
        if (i as i64) >= kept {
            remainder |= digit != 0;
        } else if significant > 0 || digit != 0 {
            significant += 1;
            if significant > max_digits {
                return Err(NumError::Overflow);
            }
            value = value * 10 + i128::from(digit);
        }
    }
    if remainder && !floor {
        return Err(NumError::Fraction);
    }
    if shift > 0 && value != 0 {
        if i64::from(significant) + shift > i64::from(max_digits) {
            return Err(NumError::Overflow);
        }
        value *= 10i128.pow(shift as u32);
    }
    Ok(match (negative, remainder) {
        (false, _) => value,
        (true, false) => -value,
        (true, true) => -value - 1,
    })
}

/// An exponent's digits, saturated far beyond any exponent that matters.
fn exponent(bytes: &[u8]) -> Result<i64, NumError> {
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NumError::Syntax);
    }
    let magnitude = digits.iter().fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(1_000_000));
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_integers_are_exact() {
        use NumError::*;
        type Case = (&'static str, u32, u32, bool, Result<i128, NumError>);
        let cases: &[Case] = &[
            ("12.50", 2, 10, false, Ok(1250)),
            ("12.5", 2, 10, false, Ok(1250)),
            ("12", 2, 10, false, Ok(1200)),
            ("-0.01", 2, 10, false, Ok(-1)),
            ("12.500000", 2, 10, false, Ok(1250)),
            ("12.345", 2, 10, false, Err(Fraction)),
            ("1.25e1", 2, 10, false, Ok(1250)),
            ("125E-2", 2, 10, false, Ok(125)),
            ("1e-3", 2, 10, false, Err(Fraction)),
            ("12345678.99", 2, 10, false, Ok(1_234_567_899)),
            ("123456789.99", 2, 10, false, Err(Overflow)),
            ("1e8", 2, 10, false, Err(Overflow)),
            ("0e999999999", 2, 10, false, Ok(0)),
            ("+007.10", 2, 10, false, Ok(710)),
            (".5", 1, 2, false, Ok(5)),
            ("99999999999999999999999999999999999999", 0, 38, false, Ok(10i128.pow(38) - 1)),
            ("999999999999999999999999999999999999999", 0, 38, false, Err(Overflow)),
            ("12345678901234567890.123456789012345678", 18, 38, false, Ok(12345678901234567890123456789012345678)),
            ("5.", 0, 10, false, Err(Syntax)),
            ("", 0, 10, false, Err(Syntax)),
            ("-", 0, 10, false, Err(Syntax)),
            ("1e", 0, 10, false, Err(Syntax)),
            ("1,5", 0, 10, false, Err(Syntax)),
            (" 1", 0, 10, false, Err(Syntax)),
            ("NaN", 0, 10, false, Err(Syntax)),
            ("1.9999999", 6, 38, true, Ok(1_999_999)),
            ("-1.0000005", 6, 38, true, Ok(-1_000_001)),
        ];
        for (text, scale, digits, floor, want) in cases {
            assert_eq!(&scaled_integer(text, *scale, *digits, *floor), want, "{text}");
        }
    }

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    fn ok(ty: &Ty, text: &str) -> Cell<'static> {
        let text: &'static str = Box::leak(text.to_string().into_boxed_str());
        convert(ty, raw(text)).unwrap()
    }

    fn err(ty: &Ty, text: &str) -> (ErrorKind, String) {
        let f = convert(ty, raw(text)).unwrap_err();
        match f.path_suffix() {
            at if at.is_empty() => (f.kind, f.detail),
            at => (f.kind, format!("{at}: {}", f.detail)),
        }
    }

    #[test]
    fn integers() {
        assert_eq!(ok(&Ty::Long, "-9223372036854775808"), Cell::I64(i64::MIN));
        assert_eq!(ok(&Ty::Long, "3.0"), Cell::I64(3));
        assert_eq!(ok(&Ty::Long, "3e2"), Cell::I64(300));
        assert_eq!(ok(&Ty::Int, "-2147483648"), Cell::I32(i32::MIN));
        assert_eq!(err(&Ty::Int, "2147483648"), (ErrorKind::OutOfRange, "2147483648 is out of range for int".into()));
        assert_eq!(
            err(&Ty::Long, "9223372036854775808"),
            (ErrorKind::OutOfRange, "9223372036854775808 is out of range for long".into())
        );
        assert_eq!(err(&Ty::Long, "1e40"), (ErrorKind::OutOfRange, "1e40 is out of range for long".into()));
        assert_eq!(err(&Ty::Long, "3.5"), (ErrorKind::WrongType, "expected long, found number 3.5".into()));
        assert_eq!(err(&Ty::Long, "\"7\""), (ErrorKind::WrongType, "expected long, found string \"7\"".into()));
        assert_eq!(err(&Ty::Long, "true"), (ErrorKind::WrongType, "expected long, found boolean true".into()));
    }

    #[test]
    fn floats() {
        assert_eq!(ok(&Ty::Double, "0.1"), Cell::F64(0.1));
        assert_eq!(ok(&Ty::Float, "0.1"), Cell::F32(0.1));
        assert_eq!(ok(&Ty::Double, "-5"), Cell::F64(-5.0));
        assert_eq!(err(&Ty::Float, "1e39"), (ErrorKind::OutOfRange, "1e39 is out of range for float".into()));
        assert_eq!(err(&Ty::Double, "1e400"), (ErrorKind::OutOfRange, "1e400 is out of range for double".into()));
        assert_eq!(err(&Ty::Double, "\"1.5\""), (ErrorKind::WrongType, "expected double, found string \"1.5\"".into()));
    }

    #[test]
    fn temporal() {
        let tz = Ty::Timestamptz(TimestampFormat::Iso8601);
        let ntz = Ty::Timestamp(TimestampFormat::Iso8601);
        assert_eq!(ok(&tz, "\"1970-01-01T00:00:01.5Z\""), Cell::I64(1_500_000));
        assert_eq!(ok(&tz, "\"1970-01-01 01:00:00+01:00\""), Cell::I64(0));
        assert_eq!(ok(&tz, "\"1970-01-01T00:00:00.0000019-0000\""), Cell::I64(1));
        assert_eq!(ok(&tz, "\"1969-12-31T23:59:59.9999999Z\""), Cell::I64(-1));
        assert_eq!(
            err(&tz, "\"1970-01-01T00:00:00\""),
            (
                ErrorKind::WrongType,
                "expected timestamptz, found string \"1970-01-01T00:00:00\" without a UTC offset or Z".into()
            )
        );
        assert_eq!(err(&tz, "0"), (ErrorKind::WrongType, "expected timestamptz, found number 0".into()));
        assert_eq!(ok(&ntz, "\"1970-01-02T00:00:00\""), Cell::I64(86_400_000_000));
        assert_eq!(ok(&ntz, "\"1970-01-02 00:00:00.25\""), Cell::I64(86_400_250_000));
        assert_eq!(ok(&ntz, "\"1970-01-02T02:00:00+02:00\""), Cell::I64(86_400_000_000));
        assert_eq!(
            err(&ntz, "\"tomorrow\""),
            (ErrorKind::WrongType, "expected timestamp, found string \"tomorrow\"".into())
        );
        let seconds = Ty::Timestamptz(TimestampFormat::EpochSeconds);
        assert_eq!(ok(&seconds, "1700000000.25"), Cell::I64(1_700_000_000_250_000));
        assert_eq!(ok(&seconds, "\"-1.5\""), Cell::I64(-1_500_000));
        assert_eq!(
            err(&seconds, "\"2026-01-01T00:00:00Z\""),
            (
                ErrorKind::WrongType,
                "expected timestamptz (epoch seconds), found string \"2026-01-01T00:00:00Z\"".into()
            )
        );
        assert_eq!(
            err(&seconds, "9300000000000"),
            (ErrorKind::OutOfRange, "9300000000000 is outside the range of timestamptz".into())
        );
        let micros = Ty::Timestamp(TimestampFormat::EpochMicros);
        assert_eq!(ok(&micros, "9223372036854"), Cell::I64(9_223_372_036_854));
        assert_eq!(
            err(&micros, "9223372036854775807"),
            (ErrorKind::OutOfRange, "9223372036854775807 is outside the range of timestamp".into())
        );
        assert_eq!(ok(&Ty::Date(TimestampFormat::Iso8601), "\"1969-12-31\""), Cell::I32(-1));
        assert_eq!(ok(&Ty::Date(TimestampFormat::EpochMillis), "-1"), Cell::I32(-1));
        assert_eq!(ok(&Ty::Date(TimestampFormat::EpochMillis), "86400000"), Cell::I32(1));
        assert_eq!(
            err(&Ty::Date(TimestampFormat::Iso8601), "\"2026-02-30\""),
            (ErrorKind::WrongType, "expected date, found string \"2026-02-30\"".into())
        );
        assert_eq!(ok(&Ty::Time, "\"10:00:01.000002\""), Cell::I64(36_001_000_002));
        assert_eq!(
            err(&Ty::Time, "\"23:59:60\""),
            (ErrorKind::OutOfRange, "\"23:59:60\" is a leap second, which time cannot hold".into())
        );
    }

    #[test]
    fn strings_uuids_binary() {
        assert_eq!(ok(&Ty::String, r#""a\"b""#), Cell::Str("a\"b".into()));
        assert_eq!(ok(&Ty::String, "12.50"), Cell::Str("12.50".into()));
        assert_eq!(ok(&Ty::String, r#"{"a": [1, true]}"#), Cell::Str(r#"{"a": [1, true]}"#.into()));
        assert_eq!(
            ok(&Ty::Uuid, "\"{00112233-4455-6677-8899-AABBCCDDEEFF}\""),
            Cell::Uuid([
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
            ])
        );
        assert_eq!(err(&Ty::Uuid, "\"0011\""), (ErrorKind::WrongType, "expected uuid, found string \"0011\"".into()));
        assert_eq!(ok(&Ty::Binary, "\"AP8=\""), Cell::Bytes(vec![0, 255].into()));
        assert_eq!(ok(&Ty::Binary, "\"AP8\""), Cell::Bytes(vec![0, 255].into()));
        assert_eq!(
            err(&Ty::Binary, "\"*\""),
            (ErrorKind::WrongType, "expected binary (base64), found string \"*\"".into())
        );
    }

    #[test]
    fn nested_values_and_where_they_fail() {
        let ty = Ty::new(&IcebergType::parse("struct<a:list<map<long,int>>,b:boolean>").unwrap(), None);
        assert_eq!(
            ok(&ty, r#"{"a":[{"1":2,"-3":null},null,{}],"x":0}"#),
            Cell::Struct(vec![
                Cell::List(vec![
                    Cell::Map(vec![(Cell::I64(1), Cell::I32(2)), (Cell::I64(-3), Cell::Null)]),
                    Cell::Null,
                    Cell::Map(vec![]),
                ]),
                Cell::Null,
            ])
        );
        assert_eq!(
            err(&ty, r#"{"a":[{},{"7":"x"}]}"#),
            (ErrorKind::WrongType, ".a[1].7: expected int, found string \"x\"".into())
        );
        assert_eq!(
            err(&ty, r#"{"a":[{"k 1":1}]}"#),
            (ErrorKind::WrongType, ".a[0][\"k 1\"]: expected long, found string \"k 1\"".into())
        );
        assert_eq!(
            err(&ty, r#"{"a":{"1":1}}"#),
            (ErrorKind::WrongType, ".a: expected list<map<long,int>>, found an object".into())
        );
        assert_eq!(
            err(&ty, "[]"),
            (ErrorKind::WrongType, "expected struct<a:list<map<long,int>>,b:boolean>, found an array".into())
        );
    }
}
