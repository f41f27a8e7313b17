//! One JSON value to one column value, or why not.
//!
//! Converters only look: the cells they return borrow from the message, and
//! the decoder appends them to Arrow builders once every column of the row
//! has converted. Numbers and strings go through the conversions all formats
//! share ([`exact`]); what is JSON's own is here: nesting (arrays, objects
//! as maps and structs), map keys read from their text, JSON text kept for
//! string columns, and base64 for binary.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::value::RawValue;

use super::paths::{self, Json};
use crate::formats::exact::{self, float, integer, scaled_integer, Fail, NumError, Step};
use crate::mapping::{Cell, Ty};

/// Converts a present value (JSON `null` becomes a null cell).
pub(crate) fn convert<'a>(ty: &Ty, raw: &'a RawValue) -> Result<Cell<'a>, Fail> {
    let value = Json::of(raw);
    match (ty, value) {
        (_, Json::Null) => Ok(Cell::Null),
        (Ty::List(element), Json::Array) => {
            let items = paths::elements(raw);
            let mut cells = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                cells.push(convert(element, item).map_err(|f| f.within(Step::Index(i)))?);
            }
            Ok(Cell::List(cells))
        }
        (Ty::Map(key_ty, value_ty), Json::Object) => {
            let members = paths::members(raw);
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
            let values = paths::fields(raw, names);
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

/// A boolean, a number or a string, by the rules every format shares
/// ([`exact`]); JSON adds only base64 for binary columns.
fn scalar<'a>(ty: &Ty, value: Json<'a>) -> Result<Cell<'a>, Fail> {
    let found = &value;
    match (ty, &value) {
        (Ty::Boolean, Json::Bool(b)) => Ok(Cell::Bool(*b)),
        (Ty::Binary, Json::String(s)) => match BASE64.decode(s.as_bytes()) {
            Ok(bytes) => Ok(Cell::Bytes(Cow::Owned(bytes))),
            Err(_) => Err(Fail::wrong_type(ty, found)),
        },
        (_, Json::Number(text)) => exact::from_number(ty, text, found),
        (_, Json::String(s)) => exact::from_string(ty, s, found),
        _ => Err(Fail::wrong_type(ty, found)),
    }
}

#[cfg(test)]
mod tests {
    use icehouse_api::pipelines::{IcebergType, TimestampFormat};

    use super::*;
    use crate::mapping::ErrorKind;

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
