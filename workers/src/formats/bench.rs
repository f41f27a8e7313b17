//! A reference workload for benchmarks of the decode path (messages to Arrow
//! batches), so every benchmark measures the same thing.

use std::sync::Arc;

use icehouse_api::pipelines::{ColumnMapping, CompiledMapping, Mapping, MessageFormat};

use super::RowDecoder;
use crate::mapping::{table_schema, KafkaMessage};

/// The mapping of [`orders_messages`]: eight columns of typical types, two
/// fields of each message left unmapped.
pub fn orders_mapping() -> Mapping {
    let column = |name: &str, ty: &str, path: &str, nullable: bool| ColumnMapping {
        name: name.into(),
        column_type: ty.into(),
        path: path.into(),
        nullable,
        timestamp_format: None,
    };
    Mapping {
        columns: vec![
            column("id", "long", "$.id", false),
            column("store", "string", "$.store", true),
            column("qty", "int", "$.qty", true),
            column("price", "decimal(10,2)", "$.price", true),
            column("sold_at", "timestamptz", "$.sold_at", false),
            column("customer_id", "uuid", "$.customer.id", true),
            column("customer_tier", "string", "$.customer.tier", true),
            column("tags", "list<string>", "$.tags", true),
        ],
    }
}

/// `count` order messages of about 250 bytes of JSON each, all valid for
/// [`orders_mapping`], e.g. `{"id":123,"store":"s-23","qty":4,"price":"123.23",
/// "sold_at":"2026-11-27T10:02:03Z","customer":{"id":"…","tier":"gold"},…}`.
pub fn orders_messages(count: usize) -> Vec<KafkaMessage> {
    const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
    (0..count)
        .map(|i| {
            let customer = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8 ^ (i as u128 * 0x9e37_79b9));
            let value = format!(
                concat!(
                    r#"{{"id":{id},"store":"s-{store}","qty":{qty},"price":"{units}.{cents:02}","#,
                    r#""sold_at":"2026-11-27T{h:02}:{m:02}:{s:02}Z","customer":{{"id":"{customer}","tier":"{tier}"}},"#,
                    r#""channel":"web","tags":["promo","weekend"],"note":"leave the parcel at the back door, please"}}"#
                ),
                id = 1_000_000 + i,
                store = i % 50,
                qty = i % 7 + 1,
                units = i % 1000,
                cents = i % 100,
                h = (i / 3600) % 24,
                m = (i / 60) % 60,
                s = i % 60,
                customer = customer.hyphenated(),
                tier = TIERS[i % 3],
            );
            KafkaMessage {
                topic: "orders".into(),
                partition: (i % 8) as i32,
                offset: i as i64,
                timestamp_ms: Some(1_795_770_000_000 + i as i64),
                key: Some(i.to_string().into_bytes()),
                value: Some(value.into_bytes()),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// What [`decode_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeRun {
    pub rows: usize,
    pub rejected: usize,
    pub batches: usize,
    /// Sum of the lengths of the message values.
    pub value_bytes: usize,
}

/// Decodes every message with a fresh [`RowDecoder`], finishing a batch
/// every `batch_rows` rows and at the end. Time this call to measure decoding.
pub fn decode_all(mapping: &Mapping, messages: &[KafkaMessage], batch_rows: usize) -> anyhow::Result<DecodeRun> {
    let mapping = CompiledMapping::compile(mapping)?;
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&table_schema(&mapping)?)?);
    let mut decoder = RowDecoder::new(MessageFormat::Json, &mapping, schema, usize::MAX)?;
    let mut run = DecodeRun::default();
    for msg in messages {
        run.value_bytes += msg.value.as_ref().map_or(0, Vec::len);
        match decoder.push(msg) {
            Ok(()) => run.rows += 1,
            Err(_) => run.rejected += 1,
        }
        if decoder.len() >= batch_rows.max(1) {
            std::hint::black_box(decoder.finish());
            run.batches += 1;
        }
    }
    if !decoder.is_empty() {
        std::hint::black_box(decoder.finish());
        run.batches += 1;
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_workload_decodes_cleanly() {
        let messages = orders_messages(1000);
        let run = decode_all(&orders_mapping(), &messages, 300).unwrap();
        assert_eq!((run.rows, run.rejected, run.batches), (1000, 0, 4));
        let average = run.value_bytes / 1000;
        assert!((240..=260).contains(&average), "{average} bytes a message");
    }
}
