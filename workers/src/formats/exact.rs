//! The exact conversions every format shares, and how a conversion fails.
//!
//! A format's decoder finds a column's value in a message and hands it here
//! in one of two forms: a number by its decimal text (JSON has no other; a
//! binary format prints its integer or reads its decimal to that text), or a
//! string. From there the rules are the same for every format: integers
//! must be integers and fit their type, decimals are never rounded,
//! timestamps keep microseconds and read ISO-8601 or, with a column's epoch
//! `timestamp_format`, a number of seconds, milliseconds or microseconds.
//! No value passes through floating point unless its column is a float.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use icehouse_api::pipelines::TimestampFormat;

use crate::mapping::{Cell, ErrorKind, Ty};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A value that arrives as a number, by its text: `ty`'s value, or why not.
/// Numbers fill int, long, float, double and decimal columns, and date and
/// timestamp columns with an epoch `timestamp_format`.
pub(crate) fn from_number<'a>(ty: &Ty, text: &str, found: &dyn fmt::Display) -> Result<Cell<'a>, Fail> {
    match ty {
        Ty::Int => Ok(Cell::I32(integer(text, ty, found)? as i32)),
        Ty::Long => Ok(Cell::I64(integer(text, ty, found)?)),
        Ty::Float => Ok(Cell::F32(float32(text, ty)?)),
        Ty::Double => Ok(Cell::F64(float(text, ty, found)?)),
        Ty::Decimal { precision, scale } => decimal(text, *precision, *scale, ty, found),
        Ty::Date(format) | Ty::Timestamp(format) | Ty::Timestamptz(format) if *format != TimestampFormat::Iso8601 => {
            epoch(text, *format, ty, found)
        }
        _ => Err(Fail::wrong_type(ty, found)),
    }
}

/// A value that arrives as a string: `ty`'s value, or why not. Strings fill
/// decimal (numeric text), uuid, date, time and timestamp columns (ISO-8601,
/// or numeric text with an epoch `timestamp_format`). A string column takes
/// the string as it is, without coming here.
pub(crate) fn from_string<'a>(ty: &Ty, s: &str, found: &dyn fmt::Display) -> Result<Cell<'a>, Fail> {
    use TimestampFormat::Iso8601;
    match ty {
        Ty::Decimal { precision, scale } => decimal(s, *precision, *scale, ty, found),
        Ty::Uuid => match uuid::Uuid::try_parse(s) {
            Ok(u) => Ok(Cell::Uuid(*u.as_bytes())),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        Ty::Date(Iso8601) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(date) => Ok(Cell::I32(date.num_days_from_ce() - UNIX_EPOCH_FROM_CE)),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        Ty::Time => time(s, ty, found).map(Cell::I64),
        Ty::Timestamptz(Iso8601) => match with_offset(s) {
            Some(micros) => Ok(Cell::I64(micros)),
            None if without_offset(s).is_some() => Err(Fail::new(
                ErrorKind::WrongType,
                format!("expected timestamptz, found string {:?} without a UTC offset or Z", clip(s)),
            )),
            None => Err(Fail::wrong_type(ty, found)),
        },
        Ty::Timestamp(Iso8601) => match without_offset(s).or_else(|| with_offset(s)) {
            Some(micros) => Ok(Cell::I64(micros)),
            None => Err(Fail::wrong_type(ty, found)),
        },
        Ty::Date(format) | Ty::Timestamp(format) | Ty::Timestamptz(format) => epoch(s, *format, ty, found),
        _ => Err(Fail::wrong_type(ty, found)),
    }
}

/// Cuts long text for error messages.
pub(crate) fn clip(text: &str) -> Cow<'_, str> {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

/// Why a value did not convert, and where below the column's own path.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
    /// Innermost first.
    at: Vec<Step>,
}

/// One step below a column's path.
#[derive(Debug)]
pub(crate) enum Step {
    Field(String),
    Index(usize),
}

impl Fail {
    /// `found` says what the message had, in the format's own words
    /// (`string "7x"`, `number 2.5`).
    pub(crate) fn wrong_type(ty: &Ty, found: &dyn fmt::Display) -> Fail {
        Fail::new(ErrorKind::WrongType, format!("expected {}, found {found}", ty.expected()))
    }

    pub(crate) fn out_of_range(detail: String) -> Fail {
        Fail::new(ErrorKind::OutOfRange, detail)
    }

    pub(crate) fn new(kind: ErrorKind, detail: String) -> Fail {
        Fail { kind, detail, at: Vec::new() }
    }

    pub(crate) fn within(mut self, step: Step) -> Fail {
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

pub(crate) fn integer(text: &str, ty: &Ty, found: &dyn fmt::Display) -> Result<i64, Fail> {
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

pub(crate) fn float(text: &str, ty: &Ty, found: &dyn fmt::Display) -> Result<f64, Fail> {
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

fn decimal<'a>(text: &str, precision: u8, scale: u8, ty: &Ty, found: &dyn fmt::Display) -> Result<Cell<'a>, Fail> {
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

fn time(s: &str, ty: &Ty, found: &dyn fmt::Display) -> Result<i64, Fail> {
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
fn epoch<'a>(text: &str, format: TimestampFormat, ty: &Ty, found: &dyn fmt::Display) -> Result<Cell<'a>, Fail> {
    let micros = epoch_micros(text, format, ty, found)?;
    Ok(match ty {
        Ty::Date(_) => Cell::I32(micros.div_euclid(MICROS_PER_DAY) as i32),
        _ => Cell::I64(micros),
    })
}

/// Microseconds since the epoch of an epoch number in `format`'s unit;
/// digits below a microsecond are dropped (towards the past).
fn epoch_micros(text: &str, format: TimestampFormat, ty: &Ty, found: &dyn fmt::Display) -> Result<i64, Fail> {
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

    #[test]
    fn numbers_and_strings_meet_the_same_rules() {
        let found = |what: &'static str| what;
        let ty = Ty::Decimal { precision: 6, scale: 2 };
        assert_eq!(from_number(&ty, "12.5", &found("number 12.5")).unwrap(), Cell::I128(1250));
        assert_eq!(from_string(&ty, "12.5", &found("string \"12.5\"")).unwrap(), Cell::I128(1250));
        let f = from_string(&ty, "1.005", &found("string")).unwrap_err();
        assert_eq!(
            (f.kind, f.detail.as_str()),
            (ErrorKind::OutOfRange, "1.005 has more than 2 decimal places for decimal(6,2) (values are never rounded)")
        );
        // An integer column takes numbers only, and says what it found.
        let f = from_string(&Ty::Long, "7", &found("string \"7\"")).unwrap_err();
        assert_eq!((f.kind, f.detail.as_str()), (ErrorKind::WrongType, "expected long, found string \"7\""));
        let millis = Ty::Timestamptz(TimestampFormat::EpochMillis);
        assert_eq!(from_number(&millis, "1500", &found("number")).unwrap(), Cell::I64(1_500_000));
        assert_eq!(from_string(&millis, "1500", &found("string")).unwrap(), Cell::I64(1_500_000));
        let iso = Ty::Timestamptz(TimestampFormat::Iso8601);
        let f = from_number(&iso, "1500", &found("number 1500")).unwrap_err();
        assert_eq!(f.detail, "expected timestamptz, found number 1500");
    }
}
