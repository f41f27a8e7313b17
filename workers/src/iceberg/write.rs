//! Data files: one Arrow batch in, Parquet files per partition value out,
//! described as `DataFile`s ready for a commit (and invisible until then).
//!
//! Built from iceberg-rust's writer stack (partition splitter, fan-out,
//! rolling Parquet writer) with two of its defaults overridden:
//! - `DefaultFileNameGenerator` counts from 0 in every writer, so two writers
//!   of the same table would overwrite each other's files; every call here
//!   gets its own UUIDv7 prefix.
//! - `ParquetWriterBuilder::from_table_properties` ignores
//!   `write.parquet.compression-codec` (parquet-rs then writes uncompressed),
//!   so the codec is mapped here.
//!
//! A fan-out writer keeps a Parquet writer (with its column buffers) open
//! per partition value until it is closed, and the values come from the
//! messages: a batch over many values is written [`MAX_OPEN_WRITERS`]
//! values at a time, so memory is bounded by the batch, not by its
//! cardinality. (Each value still gets its own files: compaction merges them.)

use arrow::record_batch::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use uuid::Uuid;

use super::error::ResultExt;
use super::{LakeError, LakeResult, LoadedTable, Warehouse};

const COMPRESSION_CODEC: &str = "write.parquet.compression-codec";
const COMPRESSION_LEVEL: &str = "write.parquet.compression-level";

/// Partition writers open at once while a batch is written.
pub const MAX_OPEN_WRITERS: usize = 64;

/// Writes `batch` (columns in the order and types of
/// [`LoadedTable::arrow_schema`]) as Parquet data files under the table's
/// data folder, one or more per partition value. Nothing is committed.
pub async fn write_data_files(wh: &Warehouse, table: &LoadedTable, batch: RecordBatch) -> LakeResult<Vec<DataFile>> {
    let rows = batch.num_rows();
    if rows == 0 {
        return Ok(vec![]);
    }
    let files = write(wh, table, batch).await.map_err(|e| e.context(format!("table {}", table.ident())))?;
    tracing::debug!(table = %table.name, files = files.len(), rows, "wrote data files");
    Ok(files)
}

async fn write(wh: &Warehouse, table: &LoadedTable, batch: RecordBatch) -> LakeResult<Vec<DataFile>> {
    // Re-labelled with the table's own Arrow schema: same columns, and the
    // field ids the Parquet writer maps columns by, whatever the caller's
    // field metadata said. Fails on a type or nullability mismatch.
    let batch = RecordBatch::try_new(table.arrow_schema()?, batch.columns().to_vec())
        .map_err(|e| LakeError::invalid(format!("the batch does not match the table's schema: {e}")))?;
    let metadata = &table.metadata;
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let props = metadata.table_properties().context("reading the table properties")?;

    let parquet = ParquetWriterBuilder::new(writer_properties(metadata.properties())?, schema.clone());
    let locations = DefaultLocationGenerator::new(metadata).context("the table's data location")?;
    // Each builder names its files from a prefix of its own (see above).
    let builder = || {
        DataFileWriterBuilder::new(RollingFileWriterBuilder::new(
            parquet.clone(),
            props.write_target_file_size_bytes,
            wh.file_io.clone(),
            locations.clone(),
            DefaultFileNameGenerator::new(Uuid::now_v7().to_string(), None, DataFileFormat::Parquet),
        ))
    };

    // A write that fails is the store failing (or, with the opendal error
    // in its chain, whatever the store said), which the mapping tells apart.
    let writing = "writing a data file";
    if spec.is_unpartitioned() {
        let mut writer = builder().build(None).await.context(writing)?;
        writer.write(batch).await.context(writing)?;
        writer.close().await.context(writing)
    } else {
        let splitter =
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec).context("the partition spec")?;
        // One part per partition value; a group of them per fan-out.
        let parts = splitter.split(&batch).context("splitting the batch by partition")?;
        let mut files = Vec::new();
        let mut fanout = FanoutWriter::new(builder());
        for (n, (key, part)) in parts.into_iter().enumerate() {
            if n > 0 && n % MAX_OPEN_WRITERS == 0 {
                let full = std::mem::replace(&mut fanout, FanoutWriter::new(builder()));
                files.extend(full.close().await.context(writing)?);
            }
            fanout.write(key, part).await.context(writing)?;
        }
        files.extend(fanout.close().await.context(writing)?);
        Ok(files)
    }
}

/// Parquet settings from the table's `write.parquet.*` properties; zstd
/// unless the table says otherwise.
fn writer_properties(table_props: &std::collections::HashMap<String, String>) -> LakeResult<WriterProperties> {
    let codec = table_props.get(COMPRESSION_CODEC).map(|c| c.to_ascii_lowercase()).unwrap_or_else(|| "zstd".into());
    let level = table_props
        .get(COMPRESSION_LEVEL)
        .map(|l| {
            l.parse::<i32>().map_err(|_| LakeError::invalid(format!("{COMPRESSION_LEVEL} is not a number: {l:?}")))
        })
        .transpose()?;
    let bad_level = |e: parquet::errors::ParquetError| LakeError::invalid(format!("{COMPRESSION_LEVEL}: {e}"));
    let compression = match codec.as_str() {
        "zstd" => Compression::ZSTD(level.map(ZstdLevel::try_new).transpose().map_err(bad_level)?.unwrap_or_default()),
        "gzip" => Compression::GZIP(
            level.map(|l| GzipLevel::try_new(l as u32)).transpose().map_err(bad_level)?.unwrap_or_default(),
        ),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => return Err(LakeError::invalid(format!("unsupported {COMPRESSION_CODEC} {other:?}"))),
    };
    Ok(WriterProperties::builder().set_compression(compression).build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use parquet::schema::types::ColumnPath;

    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn compression_follows_the_table_and_defaults_to_zstd() {
        let codec = |p: &[(&str, &str)]| writer_properties(&props(p)).unwrap().compression(&ColumnPath::from("amount"));
        assert_eq!(codec(&[]), Compression::ZSTD(ZstdLevel::default()));
        assert_eq!(
            codec(&[(COMPRESSION_CODEC, "zstd"), (COMPRESSION_LEVEL, "9")]),
            Compression::ZSTD(ZstdLevel::try_new(9).unwrap())
        );
        assert_eq!(codec(&[(COMPRESSION_CODEC, "SNAPPY")]), Compression::SNAPPY);
        assert_eq!(codec(&[(COMPRESSION_CODEC, "uncompressed")]), Compression::UNCOMPRESSED);
        for bad in [[(COMPRESSION_CODEC, "brotli-ish")], [(COMPRESSION_LEVEL, "high")], [(COMPRESSION_LEVEL, "99")]] {
            let err = writer_properties(&props(&bad)).unwrap_err();
            assert_eq!((err.kind(), err.is_retryable()), (crate::iceberg::LakeErrorKind::Invalid, false), "{bad:?}");
        }
    }
}
