//! Rows of a pipeline's dead-letter table: the rejected message byte for
//! byte, where it came from, and why it was rejected.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::builder::ColumnBuilder;
use super::cell::{Cell, Ty};
use super::schema::{dead_letter_columns, dead_letter_schema};
use super::{KafkaMessage, Rejection};

const INITIAL_ROWS: usize = 64;

/// Builds batches of dead-letter rows (schema: [`dead_letter_schema`]).
pub struct DeadLetterBuilder {
    schema: SchemaRef,
    pipeline_id: String,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl DeadLetterBuilder {
    pub fn new(pipeline_id: &str) -> DeadLetterBuilder {
        let schema = iceberg::arrow::schema_to_arrow_schema(&dead_letter_schema())
            .expect("the dead-letter schema has an Arrow form");
        let builders = dead_letter_columns()
            .iter()
            .zip(schema.fields())
            .map(|((_, ty, _), field)| ColumnBuilder::new(&Ty::new(ty, None), field.data_type(), INITIAL_ROWS))
            .collect::<anyhow::Result<_>>()
            .expect("the dead-letter builders match its schema");
        DeadLetterBuilder { schema: Arc::new(schema), pipeline_id: pipeline_id.to_string(), builders, rows: 0 }
    }

    /// Appends the rejected message with its reason, keeping key, value and
    /// headers exactly as received.
    pub fn push(&mut self, msg: &KafkaMessage, rejection: &Rejection, received_at: DateTime<Utc>) {
        fn bytes(b: &Option<Vec<u8>>) -> Cell<'_> {
            b.as_deref().map_or(Cell::Null, |b| Cell::Bytes(Cow::Borrowed(b)))
        }
        let text = |s: &str| Cell::Str(Cow::Owned(s.to_string()));
        let cells = [
            Cell::Str(Cow::Borrowed(&msg.topic)),
            Cell::I32(msg.partition),
            Cell::I64(msg.offset),
            msg.timestamp_ms.and_then(|ms| ms.checked_mul(1000)).map_or(Cell::Null, Cell::I64),
            bytes(&msg.key),
            bytes(&msg.value),
            Cell::Map(msg.headers.iter().map(|(k, v)| (Cell::Str(Cow::Borrowed(k)), bytes(v))).collect()),
            text(rejection.stage.as_str()),
            text(rejection.kind.as_str()),
            text(&rejection.message),
            text(&self.pipeline_id),
            Cell::I64(received_at.timestamp_micros()),
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
    use crate::mapping::{ErrorKind, Stage};

    #[test]
    fn raw_bytes_and_headers_round_trip() {
        let mut dl = DeadLetterBuilder::new("0190f5a2-pipeline");
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
    }
}
