//! The catalog rows: `iceberg_tables` and `iceberg_namespace_properties` in
//! the layout of the Iceberg JDBC catalog, written exactly as PyIceberg's
//! `SqlCatalog` and Java's `JdbcCatalog` write them so those can open our
//! tables straight from Postgres. The lookups and the pointer swap run on
//! the caller's connection or transaction (the swap must share the
//! transaction that checks the lease epoch and stores the offsets). The
//! service's own paths hold no transaction while a metadata file is read or
//! written: they read a pointer, end the transaction, then load
//! ([`load_at`]); [`create_table`] and [`drop_untouched`] open their own
//! short transactions. ([`load_table`] reads on the caller's connection,
//! for tests and tools.)
//!
//! A lost pointer swap is an error of kind `Conflict`, not a `false`: a
//! caller that forgets to look at the answer must not take a commit that
//! never landed for one that did, and `?` carries the conflict up the way it
//! carries every other failure.

use std::collections::HashMap;
use std::str::FromStr;

use iceberg::spec::{
    FormatVersion, Schema, SortOrder, TableMetadata, TableMetadataBuilder, TableProperties, Transform,
    UnboundPartitionSpec,
};
use iceberg::MetadataLocation;
use sqlx::PgConnection;

use crate::coord::Scope;

use super::confined;
use super::error::ResultExt;
use super::{check_name, LakeError, LakeResult, LoadedTable, PreparedCommit, Warehouse};

/// Table properties every Icehouse table starts with. Readers honour the
/// format and codec; our commit path honours the metadata clean-up keys.
fn default_properties() -> HashMap<String, String> {
    HashMap::from([
        (TableProperties::PROPERTY_DEFAULT_FILE_FORMAT.to_string(), "parquet".to_string()),
        ("write.parquet.compression-codec".to_string(), "zstd".to_string()),
        ("write.metadata.delete-after-commit.enabled".to_string(), "true".to_string()),
        (TableProperties::PROPERTY_METADATA_PREVIOUS_VERSIONS_MAX.to_string(), "100".to_string()),
    ])
}

/// Partition fields by column name, named the way Java and PyIceberg name
/// them (`ts_day`, `id_bucket`, `city` for identity).
pub fn partition_by(schema: &Schema, fields: &[(&str, Transform)]) -> LakeResult<UnboundPartitionSpec> {
    let mut builder = UnboundPartitionSpec::builder();
    for (column, transform) in fields {
        let source = schema
            .field_by_name(column)
            .ok_or_else(|| LakeError::invalid(format!("no column {column:?} to partition by")))?;
        let suffix = match transform {
            Transform::Identity => None,
            Transform::Bucket(_) => Some("bucket"),
            Transform::Truncate(_) => Some("trunc"),
            Transform::Year => Some("year"),
            Transform::Month => Some("month"),
            Transform::Day => Some("day"),
            Transform::Hour => Some("hour"),
            Transform::Void => Some("null"),
            Transform::Unknown => {
                return Err(LakeError::invalid(format!("unknown partition transform for column {column:?}")))
            }
        };
        let name = match suffix {
            Some(suffix) => format!("{column}_{suffix}"),
            None => column.to_string(),
        };
        builder = builder
            .add_partition_field(source.id, name, *transform)
            .with_context(|| format!("partitioning by {column:?}"))?;
    }
    Ok(builder.build())
}

/// Creates the namespace (if needed) and the table: format v2, `schema` and
/// `partition` (by column name, see [`partition_by`]), the default
/// properties, in a folder of its own `<root>/<namespace>/<name>-<uuid v7>`
/// (see [`Warehouse::new_table_location`]: a dropped and re-created table
/// never reuses the old files' folder), first metadata file
/// `<location>/metadata/00000-<uuid>.metadata.json`.
///
/// Field ids are assigned afresh from 1 in schema order (as every Iceberg
/// catalog does on create); take them from the returned table's
/// [`LoadedTable::arrow_schema`].
///
/// Idempotent: an existing table is loaded and returned as it is, whatever
/// schema was asked for.
///
/// Each database step is a short transaction of `scope`'s; the metadata file
/// is written and read with none open, so a silent bucket holds no
/// connection of the pool.
pub async fn create_table(
    scope: Scope<'_>,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
    schema: Schema,
    partition: &[(&str, Transform)],
) -> LakeResult<LoadedTable> {
    check_name("namespace", namespace, true)?;
    check_name("table name", name, false)?;
    let ident = format!("{namespace}.{name}");
    let spec = partition_by(&schema, partition).with_context(|| format!("table {ident}"))?;

    let mut tx = scope.begin().await.context("opening a transaction")?;
    let existing = table_pointer(&mut tx, wh, namespace, name).await?;
    tx.commit().await.context("reading the catalog")?;
    if let Some(location) = existing {
        return load_at(wh, namespace, name, location).await;
    }

    let location = wh.new_table_location(namespace, name);
    let metadata = TableMetadataBuilder::new(
        schema,
        spec,
        SortOrder::unsorted_order(),
        location.clone(),
        FormatVersion::V2,
        default_properties(),
    )
    .and_then(|builder| builder.build())
    .with_context(|| format!("table {ident}"))?
    .metadata;
    let metadata_location = MetadataLocation::new_with_metadata(&location, &metadata);
    let metadata_location_str = metadata_location.to_string();
    metadata
        .write_to(&wh.file_io, &metadata_location)
        .await
        .with_context(|| format!("table {ident}: writing the first metadata file {metadata_location_str}"))?;
    let metadata_location = metadata_location_str;

    // Until the commit is tried, a failure leaves the file ours to delete.
    let registered = async {
        let mut tx = scope.begin().await.context("opening a transaction")?;
        let theirs = register(&mut tx, wh, namespace, name, &metadata_location).await?;
        LakeResult::Ok((tx, theirs))
    };
    let (tx, theirs) = match registered.await {
        Ok(done) => done,
        Err(e) => {
            let _ = wh.file_io.delete(&metadata_location).await;
            return Err(e);
        }
    };
    tx.commit().await.with_context(|| format!("table {ident}: committing its catalog row"))?;
    if let Some(theirs) = theirs {
        let _ = wh.file_io.delete(&metadata_location).await;
        // Our insert found a row that the lookup above did not: a view (or
        // another non-table entry) has the name if no table does.
        let theirs =
            theirs.ok_or_else(|| LakeError::invalid(format!("{ident} exists in the catalog but is not a table")))?;
        return load_at(wh, namespace, name, theirs).await;
    }
    tracing::info!(catalog = %wh.catalog_name, namespace, table = name, %metadata_location, "created iceberg table");
    Ok(LoadedTable { namespace: namespace.to_string(), name: name.to_string(), metadata_location, metadata })
}

/// The namespace and catalog rows of a new table whose first metadata file
/// is written; `Some(pointer)` if another creator's row won (see
/// [`create_table`]).
async fn register(
    tx: &mut PgConnection,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
    metadata_location: &str,
) -> LakeResult<Option<Option<String>>> {
    let ident = format!("{namespace}.{name}");
    // PyIceberg marks a namespace without properties by this one row.
    sqlx::query(
        "INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value)
         VALUES ($1, $2, 'exists', 'true')
         ON CONFLICT (catalog_name, namespace, property_key) DO NOTHING",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("creating namespace {namespace}"))?;
    // A concurrent creator may have inserted since our check: its row wins
    // (the insert waits for its transaction), and our file is deleted.
    let inserted = sqlx::query(
        "INSERT INTO iceberg_tables
             (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location, iceberg_type)
         VALUES ($1, $2, $3, $4, NULL, 'TABLE')
         ON CONFLICT (catalog_name, table_namespace, table_name) DO NOTHING",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .bind(name)
    .bind(metadata_location)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("table {ident}: inserting its catalog row"))?
    .rows_affected()
        == 1;
    Ok(match inserted {
        true => None,
        false => Some(table_pointer(tx, wh, namespace, name).await?),
    })
}

/// Drops a table that was created for nothing (its pipeline was not
/// written after all): its catalog row goes only while the pointer is still
/// `metadata_location` (any commit moves it) and no pipeline writes to it
/// (a concurrent creation of the same table may have won), then that file.
/// Returns whether it was dropped.
pub async fn drop_untouched(
    scope: Scope<'_>,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
    metadata_location: &str,
) -> LakeResult<bool> {
    let mut tx = scope.begin().await.context("opening a transaction")?;
    let dropped = sqlx::query(
        "DELETE FROM iceberg_tables t
         WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 AND metadata_location = $4
           AND NOT EXISTS (SELECT FROM pipelines p
                           WHERE p.destination_id::text = t.catalog_name AND p.namespace = t.table_namespace
                             AND t.table_name IN (p.table_name, p.table_name || '_dead_letter'))",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .bind(name)
    .bind(metadata_location)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("table {namespace}.{name}: dropping its catalog row"))?
    .rows_affected()
        == 1;
    tx.commit().await.with_context(|| format!("table {namespace}.{name}: committing its drop"))?;
    if dropped {
        let _ = wh.file_io.delete(metadata_location).await;
        tracing::info!(catalog = %wh.catalog_name, namespace, table = name, "dropped a table created for nothing");
    }
    Ok(dropped)
}

/// The table's current metadata, or `None` if there is no such table. A
/// table whose metadata file is gone is a `NotFound` error, not `None`: the
/// catalog says it exists. Reads the file over `conn`'s transaction; where
/// none must stay open across storage I/O, read the pointer with
/// [`table_pointer`] and the file with [`load_at`].
pub async fn load_table(
    conn: &mut PgConnection,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
) -> LakeResult<Option<LoadedTable>> {
    match table_pointer(conn, wh, namespace, name).await? {
        None => Ok(None),
        Some(metadata_location) => load_at(wh, namespace, name, metadata_location).await.map(Some),
    }
}

/// Where the table's current metadata file is, if there is such a table.
pub async fn table_pointer(
    conn: &mut PgConnection,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
) -> LakeResult<Option<String>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT metadata_location FROM iceberg_tables
         WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3
           AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .with_context(|| format!("table {namespace}.{name}: reading its catalog row"))?;
    Ok(row.and_then(|(location,)| location))
}

/// Every table of the warehouse with its metadata pointer, as (namespace,
/// name, metadata location), in name order.
pub async fn table_pointers(conn: &mut PgConnection, wh: &Warehouse) -> LakeResult<Vec<(String, String, String)>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables
         WHERE catalog_name = $1 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location IS NOT NULL
         ORDER BY table_namespace, table_name",
    )
    .bind(&wh.catalog_name)
    .fetch_all(&mut *conn)
    .await
    .context("listing tables")?;
    Ok(rows)
}

/// The table as its metadata file at `metadata_location` describes it; no
/// database involved.
pub async fn load_at(
    wh: &Warehouse,
    namespace: &str,
    name: &str,
    metadata_location: String,
) -> LakeResult<LoadedTable> {
    let metadata = read_metadata(wh, &metadata_location).await.with_context(|| format!("table {namespace}.{name}"))?;
    Ok(LoadedTable { namespace: namespace.to_string(), name: name.to_string(), metadata_location, metadata })
}

/// Reads and checks a metadata file. The file is in the tenant's bucket, so
/// it is read only up to [`MAX_METADATA_BYTES`] (and never decompressed:
/// Icehouse writes plain JSON), and what it points at must lie where the
/// table does (see [`check_paths`]) before anything follows it.
async fn read_metadata(wh: &Warehouse, metadata_location: &str) -> LakeResult<TableMetadata> {
    // Parsing the name up front gives a clear error for a pointer that our
    // commit path could not build on (it derives the next file name from it).
    MetadataLocation::from_str(metadata_location)
        .map_err(|_| LakeError::invalid(format!("unexpected metadata file name {metadata_location}")))?;
    // The size stays held from the shared budget while the file is parsed.
    let read = async { confined::read_whole(&wh.file_io.new_input(metadata_location)?).await };
    let (bytes, _permit) = match read.await {
        Ok(Ok(read)) => read,
        Ok(Err(size)) => return Err(too_large(metadata_location, size)),
        Err(e) => {
            return Err(LakeError::read_failed(&wh.file_io, metadata_location, e)
                .await
                .context(format!("reading metadata file {metadata_location}")))
        }
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(LakeError::invalid_metadata(format!(
            "metadata file {metadata_location} is compressed; Icehouse reads plain JSON metadata only"
        )));
    }
    let metadata: TableMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| LakeError::invalid_metadata(format!("metadata file {metadata_location} is not valid: {e}")))?;
    check_paths(metadata_location, &metadata)?;
    Ok(metadata)
}

fn too_large(metadata_location: &str, size: u64) -> LakeError {
    LakeError::invalid_metadata(format!(
        "metadata file {metadata_location} is {size} bytes, more than the {} MiB Icehouse reads",
        MAX_METADATA_BYTES >> 20
    ))
}

/// The most a metadata file may have (the cap on every file read whole).
pub const MAX_METADATA_BYTES: u64 = confined::MAX_WHOLE_READ_BYTES;

/// Every file a metadata file names must lie in the table's location, and
/// the location must be where the catalog's pointer says the metadata file
/// is (its folder's parent; the pointer is Icehouse's, the file is in the
/// tenant's bucket): a tenant who rewrites a metadata file cannot have
/// Icehouse read (or, for compaction, delete) files elsewhere. The
/// manifests a manifest list names and the data files of a manifest are not
/// checked here.
fn check_paths(metadata_location: &str, metadata: &TableMetadata) -> LakeResult<()> {
    let location = metadata.location().trim_end_matches('/');
    let expected = metadata_location.rsplit_once('/').and_then(|(folder, _)| folder.strip_suffix("/metadata"));
    if expected != Some(location) {
        return Err(LakeError::invalid_metadata(format!(
            "metadata file {metadata_location}: the table location {location} is not the folder the metadata file is in"
        )));
    }
    let under = confined::is_under;
    let refuse = |what: &str, path: &str, folder: &str| {
        Err(LakeError::invalid_metadata(format!(
            "metadata file {metadata_location}: {what} {path} lies outside {folder}"
        )))
    };
    for snapshot in metadata.snapshots() {
        if !under(snapshot.manifest_list(), location) {
            return refuse("a manifest list", snapshot.manifest_list(), location);
        }
    }
    for log in metadata.metadata_log() {
        if !under(&log.metadata_file, location) {
            return refuse("a previous metadata file", &log.metadata_file, location);
        }
    }
    let statistics = metadata.statistics_iter().map(|s| s.statistics_path.as_str());
    let partition_statistics = metadata.partition_statistics_iter().map(|s| s.statistics_path.as_str());
    for path in statistics.chain(partition_statistics) {
        if !under(path, location) {
            return refuse("a statistics file", path, location);
        }
    }
    Ok(())
}

/// The compare-and-swap of the metadata pointer, in the caller's
/// transaction. A `Conflict` error: another writer moved the pointer first
/// and nothing was changed; reload, re-prepare with the same data files and
/// try again. `NotFound`: the table was dropped meanwhile.
pub async fn swap_pointer(tx: &mut PgConnection, wh: &Warehouse, commit: &PreparedCommit) -> LakeResult<()> {
    swap(tx, wh, &commit.namespace, &commit.name, &commit.previous_metadata_location, &commit.new_metadata_location)
        .await
}

/// [`swap_pointer`] for any metadata file: `previous` is the expected value.
pub(super) async fn swap(
    tx: &mut PgConnection,
    wh: &Warehouse,
    namespace: &str,
    name: &str,
    previous: &str,
    new: &str,
) -> LakeResult<()> {
    let ident = format!("{namespace}.{name}");
    let swapped = sqlx::query(
        "UPDATE iceberg_tables
         SET metadata_location = $4, previous_metadata_location = $5
         WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 AND metadata_location = $5",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .bind(name)
    .bind(new)
    .bind(previous)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("table {ident}: swapping its metadata pointer"))?
    .rows_affected();
    if swapped == 1 {
        return Ok(());
    }
    // Only on the losing path: a dropped table is not a race to retry.
    let still_there: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3",
    )
    .bind(&wh.catalog_name)
    .bind(namespace)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .with_context(|| format!("table {ident}: looking it up after a lost swap"))?;
    Err(match still_there {
        Some(_) => LakeError::conflict(format!(
            "table {ident}: another writer committed first (the commit was built on {previous})"
        )),
        None => LakeError::not_found(format!("table {ident} was dropped before the commit")),
    })
}

/// Every table of the warehouse, as (namespace, name), in name order.
pub async fn list_tables(conn: &mut PgConnection, wh: &Warehouse) -> LakeResult<Vec<(String, String)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_namespace, table_name FROM iceberg_tables WHERE catalog_name = $1
         ORDER BY table_namespace, table_name",
    )
    .bind(&wh.catalog_name)
    .fetch_all(&mut *conn)
    .await
    .context("listing tables")?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{NestedField, PrimitiveType, Type};

    use super::*;
    use crate::iceberg::LakeErrorKind;

    #[test]
    fn partition_fields_are_named_like_java_and_pyiceberg() {
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(2, "city", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "id", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let spec = partition_by(
            &schema,
            &[("ts", Transform::Day), ("city", Transform::Identity), ("id", Transform::Bucket(8))],
        )
        .unwrap();
        let got: Vec<_> = spec.fields().iter().map(|f| (f.source_id, f.name.as_str(), f.transform)).collect();
        assert_eq!(
            got,
            vec![
                (1, "ts_day", Transform::Day),
                (2, "city", Transform::Identity),
                (3, "id_bucket", Transform::Bucket(8))
            ]
        );
        let err = partition_by(&schema, &[("nope", Transform::Day)]).unwrap_err();
        assert_eq!((err.kind(), err.is_retryable()), (LakeErrorKind::Invalid, false));
        assert_eq!(err.to_string(), r#"no column "nope" to partition by"#);
    }
}
