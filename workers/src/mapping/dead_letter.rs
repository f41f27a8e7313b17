//! Rows of a pipeline's dead-letter table: the rejected message byte for
//! byte (up to `dead_letter.max_value_bytes` of its key, its value and each
//! header value, saying when it cut one), where it came from, and why it
//! was rejected.

use std::borrow::Cow;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::builder::ColumnBuilder;
use super::cell::{Cell, Ty};
use super::schema::dead_letter_columns;
use super::{KafkaMessage, Rejection};

const INITIAL_ROWS: usize = 64;

/// Builds batches of dead-letter rows (schema: [`crate::mapping::dead_letter_schema`]).
pub struct DeadLetterBuilder {
    schema: SchemaRef,
    pipeline_id: String,
    max_value_bytes: usize,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl DeadLetterBuilder {
    /// Rows for the dead-letter table whose Arrow schema is `schema` (its
    /// field ids are the table's; the columns must be [`crate::mapping::dead_letter_schema`]'s).
    pub fn new(pipeline_id: &str, schema: SchemaRef, max_value_bytes: usize) -> anyhow::Result<DeadLetterBuilder> {
        let columns = dead_letter_columns();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let want: Vec<&str> = columns.iter().map(|(name, _, _)| name.as_str()).collect();
        anyhow::ensure!(names == want, "the dead-letter table has the columns {names:?}, not {want:?}");
        let builders = columns
            .iter()
            .zip(schema.fields())
            .map(|((_, ty, _), field)| ColumnBuilder::new(&Ty::new(ty, None), field.data_type(), INITIAL_ROWS))
            .collect::<anyhow::Result<_>>()?;
        Ok(DeadLetterBuilder { schema, pipeline_id: pipeline_id.to_string(), max_value_bytes, builders, rows: 0 })
    }

    /// Appends the rejected message with its reason, keeping key, value and
    /// headers as received: up to `max_value_bytes` of the key, of the value,
    /// and of the headers' names and values together (in order; a header
    /// past that budget keeps an empty name and no value).
    pub fn push(&mut self, msg: &KafkaMessage, rejection: &Rejection, received_at: DateTime<Utc>) {
        fn cut<'a>(b: &'a Option<Vec<u8>>, max: usize, truncated: &mut bool) -> Cell<'a> {
            b.as_deref().map_or(Cell::Null, |b| {
                *truncated |= b.len() > max;
                Cell::Bytes(Cow::Borrowed(&b[..b.len().min(max)]))
            })
        }
        let (max, mut truncated) = (self.max_value_bytes, false);
        let length = |b: &Option<Vec<u8>>| b.as_ref().map_or(Cell::Null, |b| Cell::I64(b.len() as i64));
        let text = |s: &str| Cell::Str(Cow::Owned(s.to_string()));
        let key = cut(&msg.key, max, &mut truncated);
        let value = cut(&msg.value, max, &mut truncated);
        let mut left = max;
        let mut headers = Vec::with_capacity(msg.headers.len());
        for (name, value) in &msg.headers {
            let mut kept = left.min(name.len());
            while !name.is_char_boundary(kept) {
                kept -= 1;
            }
            truncated |= kept < name.len();
            left -= kept;
            let value = cut(value, left, &mut truncated);
            if let Cell::Bytes(b) = &value {
                left -= b.len();
            }
            headers.push((Cell::Str(Cow::Borrowed(&name[..kept])), value));
        }
        let headers = Cell::Map(headers);
        let cells = [
            Cell::Str(Cow::Borrowed(&msg.topic)),
            Cell::I32(msg.partition),
            Cell::I64(msg.offset),
            msg.timestamp_ms.and_then(|ms| ms.checked_mul(1000)).map_or(Cell::Null, Cell::I64),
            key,
            value,
            headers,
            text(rejection.stage.as_str()),
            text(rejection.kind.as_str()),
            text(&rejection.message),
            text(&self.pipeline_id),
            Cell::I64(received_at.timestamp_micros()),
            Cell::Bool(truncated),
            length(&msg.key),
            length(&msg.value),
        ];
        for (builder, cell) in self.builders.iter_mut().zip(cells) {
            builder.append(cell);
        }
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows pushed so far as one batch; the builder starts a new one.
    pub fn finish(&mut self) -> RecordBatch {
        let columns = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns).expect("the builders are made from this schema")
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
    use chrono::TimeZone;

    use super::*;
    use std::sync::Arc;

    use crate::mapping::{dead_letter_schema, ErrorKind, Stage};

    /// Rows for a dead-letter table made from [`dead_letter_schema`].
    fn for_new_table(pipeline_id: &str, max_value_bytes: usize) -> DeadLetterBuilder {
        let schema = iceberg::arrow::schema_to_arrow_schema(&dead_letter_schema()).unwrap();
        DeadLetterBuilder::new(pipeline_id, Arc::new(schema), max_value_bytes).unwrap()
    }

    #[test]
    fn raw_bytes_and_headers_round_trip() {
        let mut dl = for_new_table("0190f5a2-pipeline", 1024);
        let received_at = Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap();
        let first = KafkaMessage {
            topic: "orders".into(),
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_795_770_000_123),
            key: Some(vec![0xff, 0x00, 0xfe]),
            value: Some(b"{\"id\":\xc3\x28}".to_vec()),
            headers: vec![
                ("trace".into(), Some(vec![1, 2, 0xff])),
                ("empty".into(), None),
                ("trace".into(), Some(vec![])),
            ],
        };
        let utf8 = Rejection::new(Stage::Decode, ErrorKind::InvalidUtf8, "the value is not UTF-8");
        dl.push(&first, &utf8, received_at);
        let tombstone = KafkaMessage { topic: "orders".into(), partition: 0, offset: 7, ..Default::default() };
        let why = Rejection::new(Stage::Decode, ErrorKind::Tombstone, "the message has no value (a tombstone)");
        dl.push(&tombstone, &why, received_at);
        assert_eq!(dl.len(), 2);

        let batch = dl.finish();
        assert!(dl.is_empty());
        assert_eq!(batch.num_rows(), 2);
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let strings = |name: &str| -> Vec<String> {
            let c = col(name);
            let c = c.as_string::<i32>();
            (0..c.len()).map(|i| c.value(i).to_string()).collect()
        };
        assert_eq!(strings("topic"), vec!["orders", "orders"]);
        assert_eq!(col("partition").as_primitive::<Int32Type>().values().to_vec(), vec![3, 0]);
        assert_eq!(col("offset").as_primitive::<Int64Type>().values().to_vec(), vec![42, 7]);
        let ts = col("kafka_timestamp");
        assert_eq!(
            (ts.as_primitive::<TimestampMicrosecondType>().value(0), ts.is_null(1)),
            (1_795_770_000_123_000, true)
        );
        let key = col("key");
        assert_eq!((key.as_binary::<i64>().value(0), key.is_null(1)), (&[0xff, 0x00, 0xfe][..], true));
        let value = col("value");
        assert_eq!((value.as_binary::<i64>().value(0), value.is_null(1)), (&b"{\"id\":\xc3\x28}"[..], true));

        let headers = col("headers");
        let headers = headers.as_map();
        assert_eq!(headers.value_offsets(), &[0, 3, 3]);
        assert_eq!((headers.is_valid(0), headers.is_valid(1)), (true, true));
        let keys = headers.keys().as_string::<i32>();
        let values = headers.values().as_binary::<i64>();
        assert_eq!((keys.value(0), keys.value(1), keys.value(2)), ("trace", "empty", "trace"));
        assert_eq!(
            (values.value(0), values.is_null(1), values.is_valid(2), values.value(2)),
            (&[1, 2, 0xff][..], true, true, &[][..])
        );

        assert_eq!(strings("error_stage"), vec!["decode", "decode"]);
        assert_eq!(strings("error_kind"), vec!["invalid_utf8", "tombstone"]);
        assert_eq!(strings("error_message"), vec!["the value is not UTF-8", "the message has no value (a tombstone)"]);
        assert_eq!(strings("pipeline_id"), vec!["0190f5a2-pipeline", "0190f5a2-pipeline"]);
        assert_eq!(
            col("received_at").as_primitive::<TimestampMicrosecondType>().values().to_vec(),
            vec![1_795_770_000_000_000, 1_795_770_000_000_000]
        );
        assert_eq!(batch.schema(), dl.schema());
        let truncated = col("truncated");
        assert_eq!((truncated.as_boolean().value(0), truncated.as_boolean().value(1)), (false, false));
        let lengths = |name: &str| {
            let c = col(name);
            (0..c.len()).map(|i| (!c.is_null(i)).then(|| c.as_primitive::<Int64Type>().value(i))).collect::<Vec<_>>()
        };
        assert_eq!((lengths("key_bytes"), lengths("value_bytes")), (vec![Some(3), None], vec![Some(9), None]));
    }

    #[test]
    fn long_keys_values_and_headers_are_cut_and_say_so() {
        let mut dl = for_new_table("p", 4);
        let msg = KafkaMessage {
            topic: "t".into(),
            key: Some(b"abcdef".to_vec()),
            value: Some(b"0123456789".to_vec()),
            headers: vec![("h".into(), Some(b"xyz".to_vec())), ("long".into(), Some(b"123456".to_vec()))],
            ..Default::default()
        };
        let why = Rejection::new(Stage::Decode, ErrorKind::TooLarge, "too large");
        dl.push(&msg, &why, Utc::now());
        // Exactly at the limit is not cut.
        let at_limit = KafkaMessage { topic: "t".into(), value: Some(b"0123".to_vec()), ..Default::default() };
        dl.push(&at_limit, &why, Utc::now());
        let batch = dl.finish();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let value = col("value");
        assert_eq!(
            (value.as_binary::<i64>().value(0), value.as_binary::<i64>().value(1)),
            (&b"0123"[..], &b"0123"[..])
        );
        assert_eq!(col("key").as_binary::<i64>().value(0), b"abcd");
        // The headers share one budget: `h` and `xyz` take all 4 bytes of it, the next header none.
        let headers = col("headers");
        let names = headers.as_map().keys().as_string::<i32>().clone();
        let values = headers.as_map().values().as_binary::<i64>().clone();
        assert_eq!((names.value(0), values.value(0)), ("h", &b"xyz"[..]));
        assert_eq!((names.value(1), values.value(1)), ("", &b""[..]));
        let truncated = col("truncated");
        assert_eq!((truncated.as_boolean().value(0), truncated.as_boolean().value(1)), (true, false));
        let value_bytes = col("value_bytes");
        assert_eq!(value_bytes.as_primitive::<Int64Type>().values().to_vec(), vec![10, 4]);
        assert_eq!(col("key_bytes").as_primitive::<Int64Type>().value(0), 6);
    }

    #[test]
    fn a_table_with_other_columns_is_refused() {
        let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "topic",
            arrow::datatypes::DataType::Utf8,
            false,
        )]);
        let err = DeadLetterBuilder::new("p", Arc::new(schema), 4).err().unwrap();
        assert!(err.to_string().contains("the dead-letter table has the columns [\"topic\"]"), "{err}");
    }
}
