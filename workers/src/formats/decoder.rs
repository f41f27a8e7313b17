//! One message in, one row out, or a rejection and nothing appended.

use anyhow::{bail, Context};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use icehouse_api::pipelines::{CompiledMapping, MessageFormat};

use super::{reborrow, FormatDecoder};
use crate::mapping::builder::ColumnBuilder;
use crate::mapping::{Cell, ErrorKind, KafkaMessage, Rejection, Stage, Ty};

/// Rows reserved in the builders up front; they grow past it as needed.
const INITIAL_ROWS: usize = 1024;

/// Turns a pipeline's messages into rows of its table, one Arrow batch at a time.
///
/// Built once per pipeline (and again when its mapping changes). A message
/// either appends exactly one row or is rejected without touching the
/// builders, so the decoder's rows are exactly the accepted messages.
pub struct RowDecoder {
    schema: SchemaRef,
    format: FormatDecoder,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    max_message_bytes: usize,
    /// Scratch space of [`push`](Self::push), kept empty between messages.
    cells: Vec<Cell<'static>>,
}

impl RowDecoder {
    /// A decoder of `format` messages into rows of `mapping`'s columns.
    /// `schema` is the table's Arrow schema, which must be the Arrow form of
    /// [`table_schema`](crate::mapping::table_schema)`(mapping)`; values
    /// longer than `max_message_bytes` are rejected as `too_large`.
    pub fn new(
        format: MessageFormat,
        mapping: &CompiledMapping,
        schema: SchemaRef,
        max_message_bytes: usize,
    ) -> anyhow::Result<RowDecoder> {
        let columns = mapping.columns();
        if schema.fields().len() != columns.len() {
            bail!("the Arrow schema has {} fields for {} mapped columns", schema.fields().len(), columns.len());
        }
        let mut builders = Vec::with_capacity(columns.len());
        for (column, field) in columns.iter().zip(schema.fields()) {
            let name = &column.name;
            if field.name() != name {
                bail!("column `{name}` meets Arrow field `{}`: the schema is not the mapping's", field.name());
            }
            if field.is_nullable() != column.nullable {
                bail!(
                    "column `{name}`: nullable in the mapping is {}, in the Arrow schema {}",
                    column.nullable,
                    field.is_nullable()
                );
            }
            let ty = Ty::new(&column.ty, column.timestamp_format);
            builders.push(
                ColumnBuilder::new(&ty, field.data_type(), INITIAL_ROWS).with_context(|| format!("column `{name}`"))?,
            );
        }
        let format = FormatDecoder::new(format, mapping);
        let cells = Vec::with_capacity(columns.len());
        Ok(RowDecoder { schema, format, builders, rows: 0, max_message_bytes, cells })
    }

    /// Appends the message's row, or says why it cannot be one (and appends nothing).
    pub fn push(&mut self, msg: &KafkaMessage) -> Result<(), Rejection> {
        let decode = |kind, message: String| Rejection::new(Stage::Decode, kind, message);
        let value = match msg.value.as_deref() {
            None => return Err(decode(ErrorKind::Tombstone, "the message has no value (a tombstone)".into())),
            Some([]) => return Err(decode(ErrorKind::EmptyValue, "the message value is empty".into())),
            Some(value) if value.len() > self.max_message_bytes => {
                let message =
                    format!("the value is {} bytes, over the limit of {}", value.len(), self.max_message_bytes);
                return Err(decode(ErrorKind::TooLarge, message));
            }
            Some(value) => value,
        };
        // Every column converts before anything is appended.
        let mut cells = reborrow(std::mem::take(&mut self.cells));
        let outcome = self.format.decode(value, &mut cells);
        if outcome.is_ok() {
            for (builder, cell) in self.builders.iter_mut().zip(cells.drain(..)) {
                builder.append(cell);
            }
            self.rows += 1;
        }
        self.cells = reborrow(cells);
        outcome
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows appended so far as one batch; the decoder starts a new one.
    pub fn finish(&mut self) -> RecordBatch {
        let columns = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns).expect("the builders are made from this schema")
    }

    /// The schema of the batches (the one given to [`new`](Self::new)).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
        TimestampMicrosecondType,
    };
    use icehouse_api::pipelines::{ColumnMapping, Mapping, TimestampFormat};

    use super::*;
    use crate::mapping::table_schema;

    fn column(name: &str, ty: &str, path: &str, nullable: bool) -> ColumnMapping {
        ColumnMapping { name: name.into(), column_type: ty.into(), path: path.into(), nullable, timestamp_format: None }
    }

    fn epoch(mut column: ColumnMapping, format: TimestampFormat) -> ColumnMapping {
        column.timestamp_format = Some(format);
        column
    }

    fn decoder(mapping: &Mapping, max_message_bytes: usize) -> RowDecoder {
        let mapping = CompiledMapping::compile(mapping).unwrap();
        let schema = iceberg::arrow::schema_to_arrow_schema(&table_schema(&mapping).unwrap()).unwrap();
        RowDecoder::new(MessageFormat::Json, &mapping, Arc::new(schema), max_message_bytes).unwrap()
    }

    fn message(offset: i64, value: &str) -> KafkaMessage {
        KafkaMessage { topic: "orders".into(), offset, value: Some(value.as_bytes().to_vec()), ..Default::default() }
    }

    #[test]
    fn a_lone_surrogate_escape_is_invalid_json_not_a_panic() {
        let mapping = Mapping { columns: vec![column("a", "string", "$.a", true), column("b", "long", "$.b", true)] };
        let mut d = decoder(&mapping, 1024);
        for bad in [r#"{"a":"\ud800"}"#, r#"{"\uDC00":1,"b":2}"#, r#"{"b":1,"c":"x\ud800y"}"#] {
            let r = d.push(&message(0, bad)).unwrap_err();
            assert_eq!((r.stage, r.kind), (Stage::Decode, ErrorKind::InvalidJson), "{bad}");
        }
        // A proper pair is text, and goes through.
        d.push(&message(1, r#"{"a":"\ud83d\ude00","b":3}"#)).unwrap();
        assert_eq!(d.len(), 1);
    }

    fn every_type() -> Mapping {
        Mapping {
            columns: vec![
                column("id", "long", "$.id", false),
                column("ok", "boolean", "$.flags.ok", true),
                column("qty", "int", "$.qty", true),
                column("ratio", "float", "$.ratio", true),
                column("score", "double", "$.score", true),
                column("price", "decimal(10,2)", "$.price", false),
                column("store", "string", "$.store", true),
                column("uid", "uuid", "$.customer.id", true),
                column("day", "date", "$.day", true),
                column("at", "time", "$.at", true),
                column("local", "timestamp", "$.local", true),
                column("sold_at", "timestamptz", "$.sold_at", false),
                epoch(column("sold_ms", "timestamptz", "$.ms", true), TimestampFormat::EpochMillis),
                epoch(column("sold_s", "timestamp", "$.s", true), TimestampFormat::EpochSeconds),
                epoch(column("sold_us", "timestamptz", "$.us", true), TimestampFormat::EpochMicros),
                column("blob", "binary", "$.blob", true),
                column("tags", "list<string>", "$.tags", true),
                column("attrs", "map<string,long>", "$.attrs", true),
                column("customer", "struct<tier:string,address:struct<city:string,zip:int>>", "$.customer", true),
                column("first_sku", "string", "$.items[0].sku", true),
            ],
        }
    }

    const FULL: &str = r#"{"id":1,"flags":{"ok":true},"qty":3,"ratio":0.5,"score":1.25,"price":"12.50",
        "store":"s-12","customer":{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8","tier":"gold",
        "address":{"city":"Lyon","zip":69001}},"day":"2026-11-27","at":"10:00:00.5",
        "local":"2026-11-27T10:00:00","sold_at":"2026-11-27T10:00:00+01:00","ms":1795773600000,
        "s":"1795773600.5","us":1795773600000001,"blob":"AAEC/w==","tags":["a",null,"c"],
        "attrs":{"x":1,"y":null},"items":[{"sku":"A-1"},{"sku":"B-2"}],"unmapped":[1,{"deep":true}]}"#;
    const SPARSE: &str = r#"{"id":2,"price":7,"sold_at":"2026-11-27T09:00:00Z","qty":null,"tags":[],
        "attrs":{},"customer":{"tier":"silver"},"items":[]}"#;
    const ODD: &str =
        r#"{"id":3,"price":-0.01,"sold_at":"2026-11-27T09:00:00.123456789Z","store":42.0,"customer":null}"#;

    #[test]
    fn good_messages_become_exact_rows() {
        let mut decoder = decoder(&every_type(), 1 << 20);
        for (offset, value) in [FULL, SPARSE, ODD].into_iter().enumerate() {
            decoder.push(&message(offset as i64, value)).unwrap();
        }
        assert_eq!(decoder.len(), 3);
        let batch = decoder.finish();
        assert_eq!(decoder.len(), 0);
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), decoder.schema());

        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let opt = |a: &dyn Array, i: usize| a.is_valid(i);
        assert_eq!(col("id").as_primitive::<Int64Type>().values().to_vec(), vec![1, 2, 3]);
        let ok = col("ok");
        assert_eq!((ok.as_boolean().value(0), opt(&ok, 1), opt(&ok, 2)), (true, false, false));
        let qty = col("qty");
        assert_eq!((qty.as_primitive::<Int32Type>().value(0), qty.null_count()), (3, 2));
        assert_eq!(col("ratio").as_primitive::<Float32Type>().value(0), 0.5);
        assert_eq!(col("score").as_primitive::<Float64Type>().value(0), 1.25);
        let price = col("price");
        assert_eq!(price.as_primitive::<Decimal128Type>().values().to_vec(), vec![1250, 700, -1]);
        assert_eq!(price.data_type(), &arrow::datatypes::DataType::Decimal128(10, 2));
        let store = col("store");
        let store = store.as_string::<i32>();
        assert_eq!((store.value(0), store.is_null(1), store.value(2)), ("s-12", true, "42.0"));
        let uid = col("uid");
        let uid = uid.as_fixed_size_binary();
        assert_eq!(uid.value(0), uuid::uuid!("67e55044-10b1-426f-9247-bb680e5fe0c8").as_bytes());
        assert_eq!((uid.is_null(1), uid.is_null(2)), (true, true));
        assert_eq!(col("day").as_primitive::<Date32Type>().value(0), 20_784);
        assert_eq!(col("at").as_primitive::<Time64MicrosecondType>().value(0), 36_000_500_000);
        assert_eq!(col("local").as_primitive::<TimestampMicrosecondType>().value(0), 1_795_773_600_000_000);
        assert_eq!(
            col("sold_at").as_primitive::<TimestampMicrosecondType>().values().to_vec(),
            vec![1_795_770_000_000_000, 1_795_770_000_000_000, 1_795_770_000_123_456]
        );
        assert_eq!(col("sold_ms").as_primitive::<TimestampMicrosecondType>().value(0), 1_795_773_600_000_000);
        assert_eq!(col("sold_s").as_primitive::<TimestampMicrosecondType>().value(0), 1_795_773_600_500_000);
        assert_eq!(col("sold_us").as_primitive::<TimestampMicrosecondType>().value(0), 1_795_773_600_000_001);
        for name in ["local", "sold_ms", "sold_s", "sold_us", "day", "at", "ratio", "score"] {
            assert_eq!(col(name).null_count(), 2, "{name}");
        }
        let blob = col("blob");
        assert_eq!((blob.as_binary::<i64>().value(0), blob.null_count()), (&[0u8, 1, 2, 255][..], 2));

        let tags = col("tags");
        let tags = tags.as_list::<i32>();
        assert_eq!(tags.value_offsets(), &[0, 3, 3, 3]);
        assert_eq!((tags.is_valid(0), tags.is_valid(1), tags.is_null(2)), (true, true, true));
        let items = tags.values().as_string::<i32>();
        assert_eq!((items.value(0), items.is_null(1), items.value(2)), ("a", true, "c"));

        let attrs = col("attrs");
        let attrs = attrs.as_map();
        assert_eq!(attrs.value_offsets(), &[0, 2, 2, 2]);
        assert_eq!((attrs.is_valid(1), attrs.is_null(2)), (true, true));
        let keys = attrs.keys().as_string::<i32>();
        let values = attrs.values().as_primitive::<Int64Type>();
        assert_eq!((keys.value(0), values.value(0), keys.value(1), values.is_null(1)), ("x", 1, "y", true));

        let customer = col("customer");
        let customer = customer.as_struct();
        assert_eq!((customer.is_valid(0), customer.is_valid(1), customer.is_null(2)), (true, true, true));
        let tier = customer.column_by_name("tier").unwrap().as_string::<i32>();
        assert_eq!((tier.value(0), tier.value(1)), ("gold", "silver"));
        let address = customer.column_by_name("address").unwrap().as_struct();
        assert_eq!((address.is_valid(0), address.is_null(1), address.is_null(2)), (true, true, true));
        let city = address.column_by_name("city").unwrap().as_string::<i32>();
        let zip = address.column_by_name("zip").unwrap().as_primitive::<Int32Type>();
        assert_eq!((city.value(0), zip.value(0)), ("Lyon", 69001));

        let sku = col("first_sku");
        let sku = sku.as_string::<i32>();
        assert_eq!((sku.value(0), sku.is_null(1), sku.is_null(2)), ("A-1", true, true));
    }

    #[test]
    fn finish_starts_a_new_batch() {
        let mut decoder = decoder(&every_type(), 1 << 20);
        decoder.push(&message(0, FULL)).unwrap();
        assert_eq!(decoder.finish().num_rows(), 1);
        assert!(decoder.is_empty());
        assert_eq!(decoder.finish().num_rows(), 0);
        decoder.push(&message(1, ODD)).unwrap();
        let batch = decoder.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().value(0), 3);
        assert_eq!(batch.column_by_name("tags").unwrap().as_list::<i32>().value_offsets(), &[0, 0]);
    }

    fn orders() -> Mapping {
        Mapping {
            columns: vec![
                column("id", "long", "$.id", false),
                column("quantity", "long", "$.qty", true),
                column("small", "int", "$.small", true),
                column("price", "decimal(6,2)", "$.price", true),
                column("sold_at", "timestamptz", "$.sold_at", true),
                column("customer", "uuid", "$.customer.id", true),
                column("tags", "list<int>", "$.tags", true),
            ],
        }
    }

    fn reject(decoder: &mut RowDecoder, value: Option<&[u8]>) -> (Stage, &'static str, String) {
        let before = decoder.len();
        let msg = KafkaMessage { value: value.map(<[u8]>::to_vec), ..Default::default() };
        let rejection = decoder.push(&msg).unwrap_err();
        assert_eq!(decoder.len(), before, "a rejected message appended a row");
        (rejection.stage, rejection.kind.as_str(), rejection.message)
    }

    #[test]
    fn every_error_kind() {
        use Stage::{Decode, Map};
        let mut d = decoder(&orders(), 120);
        d.push(&message(0, r#"{"id":0}"#)).unwrap();
        let mut r = |value: &[u8]| reject(&mut d, Some(value));
        type Case = (&'static [u8], (Stage, &'static str, &'static str));
        let cases: Vec<Case> = vec![
            (b"", (Decode, "empty_value", "the message value is empty")),
            (&[b' '; 121], (Decode, "too_large", "the value is 121 bytes, over the limit of 120")),
            (
                b"{\"id\":1,\"x\":\"\xff\"}",
                (Decode, "invalid_utf8", "the value is not UTF-8: invalid utf-8 sequence of 1 bytes from index 13"),
            ),
            (
                b"{\"id\":",
                (Decode, "invalid_json", "the value is not valid JSON: EOF while parsing a value at line 1 column 6"),
            ),
            (b"[{\"id\":1}]", (Decode, "invalid_json", "the value is an array, not a JSON object")),
            (b"\"{}\"", (Decode, "invalid_json", "the value is a string, not a JSON object")),
            (b"{\"qty\":1}", (Map, "missing_required", "column `id` ($.id): required, but absent")),
            (b"{\"id\":null}", (Map, "missing_required", "column `id` ($.id): required, but null")),
            (
                b"{\"id\":1,\"qty\":\"7x\"}",
                (Map, "wrong_type", "column `quantity` ($.qty): expected long, found string \"7x\""),
            ),
            (b"{\"id\":1,\"qty\":2.5}", (Map, "wrong_type", "column `quantity` ($.qty): expected long, found number 2.5")),
            (
                b"{\"id\":1,\"sold_at\":\"2026-11-27 10:00\"}",
                (Map, "wrong_type", "column `sold_at` ($.sold_at): expected timestamptz, found string \"2026-11-27 10:00\""),
            ),
            (
                b"{\"id\":1,\"customer\":{\"id\":\"not-a-uuid\"}}",
                (Map, "wrong_type", "column `customer` ($.customer.id): expected uuid, found string \"not-a-uuid\""),
            ),
            (
                b"{\"id\":1,\"tags\":[1,\"2\"]}",
                (Map, "wrong_type", "column `tags` ($.tags[1]): expected int, found string \"2\""),
            ),
            (
                b"{\"id\":1,\"small\":2147483648}",
                (Map, "out_of_range", "column `small` ($.small): 2147483648 is out of range for int"),
            ),
            (
                b"{\"id\":1,\"price\":\"12.345\"}",
                (
                    Map,
                    "out_of_range",
                    "column `price` ($.price): 12.345 has more than 2 decimal places for decimal(6,2) (values are never rounded)",
                ),
            ),
            (b"{\"id\":1,\"price\":10000}", (Map, "out_of_range", "column `price` ($.price): 10000 does not fit decimal(6,2)")),
            (
                b"{\"id\":1,\"sold_at\":\"+262144-01-01T00:00:00Z\"}",
                (
                    Map,
                    "wrong_type",
                    "column `sold_at` ($.sold_at): expected timestamptz, found string \"+262144-01-01T00:00:00Z\"",
                ),
            ),
        ];
        for (value, (stage, kind, message)) in cases {
            assert_eq!(r(value), (stage, kind, message.to_string()), "{}", String::from_utf8_lossy(value));
        }
        assert_eq!(reject(&mut d, None), (Decode, "tombstone", "the message has no value (a tombstone)".to_string()));
        // Nothing of the rejected messages reached the builders.
        let batch = d.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![0]);
        assert_eq!(batch.column(6).as_list::<i32>().values().len(), 0);
    }

    #[test]
    fn out_of_range_epoch() {
        let mapping =
            Mapping { columns: vec![epoch(column("at", "timestamp", "$.at", true), TimestampFormat::EpochSeconds)] };
        let mut d = decoder(&mapping, 1000);
        assert_eq!(
            reject(&mut d, Some(br#"{"at":9300000000000}"#)),
            (Stage::Map, "out_of_range", "column `at` ($.at): 9300000000000 is outside the range of timestamp".into())
        );
    }

    #[test]
    fn a_late_failure_leaves_no_partial_row() {
        let mut d = decoder(&orders(), 1000);
        // Every column before `tags` converts; `tags` fails on its last element.
        let bad = br#"{"id":9,"qty":1,"small":1,"price":1,"sold_at":"2026-01-01T00:00:00Z","customer":{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8"},"tags":[1,2,true]}"#;
        assert_eq!(reject(&mut d, Some(bad)).1, "wrong_type");
        d.push(&message(1, r#"{"id":10,"tags":[5]}"#)).unwrap();
        let batch = d.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![10]);
        assert_eq!(batch.column(1).null_count(), 1);
        let tags = batch.column(6).as_list::<i32>();
        assert_eq!(tags.values().as_primitive::<Int32Type>().values().to_vec(), vec![5]);
    }

    #[test]
    fn schema_must_be_the_mappings() {
        let mapping = orders();
        let compiled = CompiledMapping::compile(&mapping).unwrap();
        let schema = iceberg::arrow::schema_to_arrow_schema(&table_schema(&compiled).unwrap()).unwrap();
        let new = |other: &Mapping, schema| {
            let other = CompiledMapping::compile(other).unwrap();
            RowDecoder::new(MessageFormat::Json, &other, Arc::new(schema), 10).err().unwrap()
        };
        let mut other = mapping.clone();
        other.columns[1].column_type = "string".into();
        let err = new(&other, schema.clone());
        assert_eq!(format!("{err:#}"), "column `quantity`: a string value cannot be written as Arrow Int64");
        other = mapping.clone();
        other.columns[0].nullable = true;
        let err = new(&other, schema);
        assert_eq!(err.to_string(), "column `id`: nullable in the mapping is true, in the Arrow schema false");
    }
}
