//! The Iceberg commit path against real Postgres and real external readers:
//! what we commit must be exactly what PyIceberg (SqlCatalog on the same
//! rows) and DuckDB (iceberg_scan of the metadata file) read back, the
//! pointer swap must refuse a commit built on stale metadata, and each way of
//! failing must be told apart by its kind (a lost race from a missing file
//! from a broken warehouse from a bad request).
//!
//! The readers run from `$ICEHOUSE_PYTHON` (set up by `scripts/test.sh`, or
//! `source scripts/lib.sh && ensure_python_readers`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use iceberg::spec::{NestedField, Operation, PrimitiveType, Schema, Transform, Type};
use icehouse_workers::coord::Scope;
use icehouse_workers::iceberg::{
    self as ice, CommitRequest, LakeError, LakeErrorKind, LoadedTable, PreparedCommit, S3Access, Warehouse,
    COMMIT_ID_KEY,
};
use serde_json::{json, Value};
use sqlx::PgPool;

const NS: &str = "sales";
/// 2024-05-01T00:00:00Z in microseconds.
const DAY0: i64 = 1_714_521_600_000_000;
const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;

#[derive(Clone, Debug)]
struct Row {
    id: i64,
    ts: Option<i64>,
    name: Option<&'static str>,
    amount: Option<f64>,
}

fn row(id: i64, ts: Option<i64>, name: Option<&'static str>, amount: Option<f64>) -> Row {
    Row { id, ts, name, amount }
}

impl Row {
    /// As the reader script prints it: schema order, timestamps in µs.
    fn json(&self) -> Value {
        json!([self.id, self.ts, self.name, self.amount])
    }
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
            NestedField::optional(3, "name", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(4, "amount", Type::Primitive(PrimitiveType::Double)).into(),
        ])
        .build()
        .unwrap()
}

fn batch(table: &LoadedTable, rows: &[Row]) -> RecordBatch {
    let schema = table.arrow_schema().unwrap();
    let tz = match schema.field(1).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => panic!("ts is {other:?}"),
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>()).with_timezone_opt(tz)),
        Arc::new(StringArray::from(rows.iter().map(|r| r.name).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.amount).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

async fn create(pool: &PgPool, wh: &Warehouse, name: &str) -> LoadedTable {
    ice::create_table(Scope::system(pool), wh, NS, name, schema(), &[("ts", Transform::Day)]).await.unwrap()
}

fn commit_summary(commit_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (COMMIT_ID_KEY.to_string(), commit_id.to_string()),
        ("icehouse.epoch".to_string(), "7".to_string()),
        ("icehouse.next-offsets".to_string(), r#"{"0":42}"#.to_string()),
    ])
}

/// Swaps in its own transaction and commits it (rolls it back if the swap fails).
async fn swap(pool: &PgPool, wh: &Warehouse, prepared: &PreparedCommit) -> Result<(), LakeError> {
    let mut tx = pool.begin().await.unwrap();
    let swapped = ice::swap_pointer(&mut tx, wh, prepared).await;
    match &swapped {
        Ok(()) => {
            tx.commit().await.unwrap();
            ice::finish_commit(wh, prepared).await;
        }
        Err(_) => tx.rollback().await.unwrap(),
    }
    swapped
}

fn kind(err: &LakeError) -> (LakeErrorKind, bool) {
    (err.kind(), err.is_retryable())
}

/// Writes, prepares and lands one append of `rows`; returns the new table.
async fn append(pool: &PgPool, wh: &Warehouse, table: &LoadedTable, rows: &[Row], commit_id: &str) -> LoadedTable {
    let files = ice::write_data_files(wh, table, batch(table, rows)).await.unwrap();
    let prepared = ice::prepare_append(wh, table, files, commit_summary(commit_id)).await.unwrap();
    swap(pool, wh, &prepared).await.expect("swap on fresh metadata must succeed");
    prepared.into_loaded()
}

async fn reload(pool: &PgPool, wh: &Warehouse, name: &str) -> LoadedTable {
    let mut conn = pool.acquire().await.unwrap();
    ice::load_table(&mut conn, wh, NS, name).await.unwrap().expect("table exists")
}

async fn pointer(pool: &PgPool, wh: &Warehouse, name: &str) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT metadata_location, previous_metadata_location FROM iceberg_tables
         WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3",
    )
    .bind(&wh.catalog_name)
    .bind(NS)
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The URL of the per-test database `sqlx::test` made, for the readers.
async fn reader_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx::test");
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    let without_query = base.split('?').next().unwrap();
    let (server, _) = without_query.rsplit_once('/').expect("DATABASE_URL has a database name");
    let rest = server.split_once("://").expect("DATABASE_URL has a scheme").1;
    format!("postgresql+psycopg2://{rest}/{db}")
}

/// What PyIceberg and DuckDB read from the table (see tests/python/read_table.py).
async fn read_externally(pool: &PgPool, wh: &Warehouse, name: &str) -> Value {
    let python = std::env::var("ICEHOUSE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ICEHOUSE_PYTHON is not set: these tests compare against PyIceberg and DuckDB. \
             Run scripts/test.sh, or `source scripts/lib.sh && ensure_python_readers` and export ICEHOUSE_PYTHON"
        )
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_table.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--uri", &reader_url(pool).await])
        .args(["--warehouse", wh.root_url()])
        .args(["--catalog", &wh.catalog_name])
        .args(["--table", &format!("{NS}.{name}")])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        output.status.success(),
        "read_table.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read_table.py prints JSON")
}

fn sorted_by_id(rows: &Value) -> Vec<Value> {
    let mut rows = rows.as_array().expect("rows are a list").clone();
    rows.sort_by_key(|r| r[0].as_i64().expect("id is a number"));
    rows
}

fn expected(rows: &[&[Row]]) -> Vec<Value> {
    let mut all: Vec<&Row> = rows.iter().flat_map(|r| r.iter()).collect();
    all.sort_by_key(|r| r.id);
    all.into_iter().map(Row::json).collect()
}

/// Asserts both readers see exactly `want` (and the catalog points where we think).
async fn assert_readers_see(pool: &PgPool, wh: &Warehouse, table: &LoadedTable, want: &[Value]) -> Value {
    let read = read_externally(pool, wh, &table.name).await;
    assert_eq!(read["columns"], json!(["id", "ts", "name", "amount"]));
    assert_eq!(read["metadata_location"], json!(table.metadata_location));
    assert_eq!(sorted_by_id(&read["pyiceberg"]), want, "PyIceberg rows");
    assert_eq!(sorted_by_id(&read["duckdb"]), want, "DuckDB rows");
    read
}

fn warehouse(dir: &tempfile::TempDir) -> Warehouse {
    Warehouse::local("0195b7e0-0000-7000-8000-000000000001", dir.path()).unwrap()
}

fn commit1() -> Vec<Row> {
    vec![
        row(1, Some(DAY0 + HOUR), Some("alice"), Some(10.5)),
        row(2, Some(DAY0 + 23 * HOUR), None, Some(-3.25)),
        row(3, Some(DAY0 + DAY + 5), Some("bob"), None),
        row(4, None, Some("no time"), Some(0.0)),
    ]
}

fn commit2() -> Vec<Row> {
    vec![
        row(5, Some(DAY0 + 2 * DAY), Some("carol"), Some(1e6)),
        row(6, Some(DAY0 - 1), Some("just before day 0"), Some(7.0)),
        row(7, Some(DAY0 + HOUR * 2), None, None),
    ]
}

fn commit3() -> Vec<Row> {
    vec![row(8, Some(DAY0 + DAY + HOUR), Some("dave ✓"), Some(2.5)), row(9, None, None, None)]
}

#[sqlx::test(migrations = "../migrations")]
async fn three_appends_read_back_exactly_by_pyiceberg_and_duckdb(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "orders").await;
    let root = dir.path().display().to_string();
    // A folder of its own, `orders-<uuid v7>`, so a re-created table never reuses it.
    let table_dir = created.metadata.location().strip_prefix("file://").unwrap().to_string();
    let folder = table_dir.strip_prefix(&format!("{root}/{NS}/orders-")).unwrap_or_else(|| panic!("{table_dir}"));
    assert_eq!(uuid::Uuid::parse_str(folder).unwrap().get_version_num(), 7, "{table_dir}");
    assert!(created.metadata_location.starts_with(&format!("file://{table_dir}/metadata/00000-")));
    assert!(created.metadata_location.ends_with(".metadata.json"));
    let props = created.metadata.properties();
    assert_eq!(props["write.format.default"], "parquet");
    assert_eq!(props["write.parquet.compression-codec"], "zstd");
    assert_eq!(props["write.metadata.delete-after-commit.enabled"], "true");

    // PyIceberg's mark of a namespace, and idempotent creation.
    let ns_rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT property_key, property_value FROM iceberg_namespace_properties WHERE catalog_name = $1 AND namespace = $2",
    )
    .bind(&wh.catalog_name)
    .bind(NS)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ns_rows, vec![("exists".to_string(), "true".to_string())]);
    let again = create(&pool, &wh, "orders").await;
    assert_eq!(again.metadata_location, created.metadata_location);
    assert_eq!(std::fs::read_dir(format!("{table_dir}/metadata")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(dir.path().join(NS)).unwrap().count(), 1, "one folder for the one table");

    let (c1, c2, c3) = (commit1(), commit2(), commit3());
    let t1 = append(&pool, &wh, &created, &c1, "commit-1").await;
    let t2 = append(&pool, &wh, &t1, &c2, "commit-2").await;
    let t3 = append(&pool, &wh, &t2, &c3, "commit-3").await;
    assert_eq!(reload(&pool, &wh, "orders").await.metadata_location, t3.metadata_location);
    assert_eq!(pointer(&pool, &wh, "orders").await, (t3.metadata_location.clone(), Some(t2.metadata_location.clone())));

    // Snapshots: unique ids, a parent chain, growing sequence numbers, totals.
    let mut snapshots: Vec<_> = t3.metadata.snapshots().cloned().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    assert_eq!(snapshots.iter().map(|s| s.sequence_number()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(snapshots.iter().map(|s| s.snapshot_id()).collect::<HashSet<_>>().len(), 3);
    assert_eq!(snapshots[0].parent_snapshot_id(), None);
    assert_eq!(snapshots[1].parent_snapshot_id(), Some(snapshots[0].snapshot_id()));
    assert_eq!(snapshots[2].parent_snapshot_id(), Some(snapshots[1].snapshot_id()));
    assert_eq!(t3.current_snapshot_id(), Some(snapshots[2].snapshot_id()));
    let summary = |i: usize| &snapshots[i].summary().additional_properties;
    // Commit 1 spans days 0, 1 and "null"; commit 2 days -1, 0, 2; commit 3 days 1 and "null".
    let expect_counts = [("4", "3", "4", "3"), ("3", "3", "7", "6"), ("2", "2", "9", "8")];
    for (i, (added_records, added_files, total_records, total_files)) in expect_counts.into_iter().enumerate() {
        assert_eq!(snapshots[i].summary().operation, Operation::Append);
        assert_eq!(summary(i)["added-records"], added_records, "snapshot {i}");
        assert_eq!(summary(i)["added-data-files"], added_files, "snapshot {i}");
        assert_eq!(summary(i)["total-records"], total_records, "snapshot {i}");
        assert_eq!(summary(i)["total-data-files"], total_files, "snapshot {i}");
        assert_eq!(summary(i)[COMMIT_ID_KEY], format!("commit-{}", i + 1));
        assert_eq!(summary(i)["icehouse.next-offsets"], r#"{"0":42}"#);
        assert_eq!(summary(i)["total-delete-files"], "0");
    }
    let total_size: u64 =
        ice::live_files(&wh, &t3).await.unwrap().iter().map(|f| f.data_file.file_size_in_bytes()).sum();
    assert_eq!(summary(2)["total-files-size"], total_size.to_string());

    // Data files: one per day partition per commit, zstd, under the partition folder.
    let live = ice::live_files(&wh, &t3).await.unwrap();
    assert_eq!(live.len(), 8);
    let mut dirs: Vec<String> = live
        .iter()
        .map(|f| {
            Path::new(f.data_file.file_path()).parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(
        dirs,
        ["ts_day=2024-04-30", "ts_day=2024-05-01", "ts_day=2024-05-02", "ts_day=2024-05-03", "ts_day=null"]
    );
    for file in &live {
        let path = file.data_file.file_path().strip_prefix("file://").unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        for column in meta.row_group(0).columns() {
            assert!(
                matches!(column.compression(), parquet::basic::Compression::ZSTD(_)),
                "{path}: {:?}",
                column.compression()
            );
        }
    }

    // The external readers see exactly the rows written, and our snapshots.
    let read = assert_readers_see(&pool, &wh, &t3, &expected(&[&c1, &c2, &c3])).await;
    let mut seen = read["snapshots"].as_array().unwrap().clone();
    seen.sort_by_key(|s| s["sequence_number"].as_i64().unwrap());
    let ids: Vec<(i64, &str)> = seen
        .iter()
        .map(|s| (s["sequence_number"].as_i64().unwrap(), s["summary"][COMMIT_ID_KEY].as_str().unwrap()))
        .collect();
    assert_eq!(ids, vec![(1, "commit-1"), (2, "commit-2"), (3, "commit-3")]);
    assert_eq!(seen[2]["snapshot_id"], json!(snapshots[2].snapshot_id()));
    assert_eq!(seen[2]["operation"], "append");
    assert_eq!(seen[2]["summary"]["total-records"], "9");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stale_swap_is_refused_and_the_same_files_land_once_on_fresh_metadata(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "events").await;
    let c1 = commit1();
    let base = append(&pool, &wh, &created, &c1, "first").await;

    // Two writers build on the same metadata; the first one lands.
    let (winner_rows, loser_rows) = (commit2(), commit3());
    let winner_files = ice::write_data_files(&wh, &base, batch(&base, &winner_rows)).await.unwrap();
    let loser_files = ice::write_data_files(&wh, &base, batch(&base, &loser_rows)).await.unwrap();
    let winner = ice::prepare_append(&wh, &base, winner_files, commit_summary("winner")).await.unwrap();
    let stale = ice::prepare_append(&wh, &base, loser_files.clone(), commit_summary("loser")).await.unwrap();
    swap(&pool, &wh, &winner).await.unwrap();

    // The stale commit is refused as a conflict (retryable) and changes nothing.
    let err = swap(&pool, &wh, &stale).await.expect_err("a swap built on replaced metadata must fail");
    assert_eq!(kind(&err), (LakeErrorKind::Conflict, true), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "table {NS}.events: another writer committed first (the commit was built on {})",
            base.metadata_location
        )
    );
    assert!(!err.is_catalog_database());
    assert_eq!(
        pointer(&pool, &wh, "events").await,
        (winner.new_metadata_location.clone(), Some(base.metadata_location.clone()))
    );
    let current = reload(&pool, &wh, "events").await;
    assert_eq!(current.current_snapshot_id(), Some(winner.snapshot_id));
    assert!(!ice::has_commit(&current.metadata, "loser"));
    ice::discard_prepared(&wh, &stale).await;
    for path in &stale.written_files {
        assert!(!Path::new(path.strip_prefix("file://").unwrap()).exists(), "{path} left behind");
    }
    assert_readers_see(&pool, &wh, &current, &expected(&[&c1, &winner_rows])).await;

    // Re-prepared on fresh metadata, the same data files land, once.
    let retried = ice::prepare_append(&wh, &current, loser_files.clone(), commit_summary("loser")).await.unwrap();
    assert_eq!(retried.previous_metadata_location, winner.new_metadata_location);
    swap(&pool, &wh, &retried).await.unwrap();
    let done = reload(&pool, &wh, "events").await;
    assert_eq!(done.metadata.snapshots().count(), 3);
    let live: Vec<String> =
        ice::live_files(&wh, &done).await.unwrap().iter().map(|f| f.data_file.file_path().to_string()).collect();
    for file in &loser_files {
        assert_eq!(live.iter().filter(|p| *p == file.file_path()).count(), 1, "{} listed once", file.file_path());
    }
    assert_eq!(live.iter().collect::<HashSet<_>>().len(), live.len());
    let summary = &done.metadata.current_snapshot().unwrap().summary().additional_properties;
    assert_eq!(summary["total-records"], (c1.len() + winner_rows.len() + loser_rows.len()).to_string());
    assert_readers_see(&pool, &wh, &done, &expected(&[&c1, &winner_rows, &loser_rows])).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn has_commit_sees_a_commit_only_after_its_swap(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "clicks").await;
    let earlier = append(&pool, &wh, &created, &commit1(), "earlier").await;

    let files = ice::write_data_files(&wh, &earlier, batch(&earlier, &commit2())).await.unwrap();
    let prepared = ice::prepare_append(&wh, &earlier, files, commit_summary("the-commit")).await.unwrap();
    assert!(!ice::has_commit(&reload(&pool, &wh, "clicks").await.metadata, "the-commit"), "visible before its swap");

    // A swap whose transaction rolls back did not happen either.
    let mut tx = pool.begin().await.unwrap();
    ice::swap_pointer(&mut tx, &wh, &prepared).await.unwrap();
    tx.rollback().await.unwrap();
    let after_rollback = reload(&pool, &wh, "clicks").await;
    assert!(!ice::has_commit(&after_rollback.metadata, "the-commit"), "visible after a rolled-back swap");
    assert_eq!(after_rollback.metadata_location, earlier.metadata_location);

    swap(&pool, &wh, &prepared).await.unwrap();
    let after = reload(&pool, &wh, "clicks").await;
    assert!(ice::has_commit(&after.metadata, "the-commit"));
    assert!(ice::has_commit(&after.metadata, "earlier"), "older commits stay findable");
    assert!(!ice::has_commit(&after.metadata, "never-made"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replace_commit_compacts_files_and_keeps_the_rows(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "metrics").await;
    let (c1, c2, c3) = (commit1(), commit2(), commit3());
    let t1 = append(&pool, &wh, &created, &c1, "a").await;
    let t2 = append(&pool, &wh, &t1, &c2, "b").await;
    let t3 = append(&pool, &wh, &t2, &c3, "c").await;

    // Compact day 2024-05-01 (ids 1, 2 from commit 1 and 7 from commit 2) into one file.
    let day = "ts_day=2024-05-01/";
    let victims: Vec<_> = ice::live_files(&wh, &t3)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.data_file.file_path().contains(day))
        .collect();
    assert_eq!(victims.len(), 2);
    let compacted_rows: Vec<Row> = c1.iter().chain(&c2).filter(|r| [1, 2, 7].contains(&r.id)).cloned().collect();
    let compacted = ice::write_data_files(&wh, &t3, batch(&t3, &compacted_rows)).await.unwrap();
    assert_eq!(compacted.len(), 1);
    let request = CommitRequest {
        operation: Operation::Replace,
        added: compacted.clone(),
        removed: victims.clone(),
        summary: HashMap::from([(COMMIT_ID_KEY.to_string(), "compaction".to_string())]),
    };
    let prepared = ice::prepare_commit(&wh, &t3, request.clone()).await.unwrap();
    swap(&pool, &wh, &prepared).await.unwrap();
    let t4 = reload(&pool, &wh, "metrics").await;
    let summary = &t4.metadata.current_snapshot().unwrap().summary();
    assert_eq!(summary.operation, Operation::Replace);
    assert_eq!(summary.additional_properties["deleted-data-files"], "2");
    assert_eq!(summary.additional_properties["added-data-files"], "1");
    assert_eq!(summary.additional_properties["total-data-files"], "7");
    assert_eq!(summary.additional_properties["total-records"], "9");
    let live = ice::live_files(&wh, &t4).await.unwrap();
    assert_eq!(live.len(), 7);
    assert!(live.iter().all(|f| !victims.iter().any(|v| v.data_file.file_path() == f.data_file.file_path())));
    assert_readers_see(&pool, &wh, &t4, &expected(&[&c1, &c2, &c3])).await;

    // The same replace again conflicts: its files are no longer live.
    let err = ice::prepare_commit(&wh, &t4, request).await.unwrap_err();
    assert!(format!("{err:#}").contains("no longer"), "{err:#}");
    assert_eq!(kind(&err), (LakeErrorKind::Conflict, true), "{err}");
    assert!(err.to_string().starts_with(&format!("table {NS}.metrics: ")), "{err}");

    // Appends go on after a replace, and a replace that drops rows is refused.
    let extra = vec![row(10, Some(DAY0 + HOUR * 3), Some("after"), Some(1.0))];
    let t5 = append(&pool, &wh, &t4, &extra, "d").await;
    assert_readers_see(&pool, &wh, &t5, &expected(&[&c1, &c2, &c3, &extra])).await;
    let lossy = CommitRequest {
        operation: Operation::Replace,
        added: vec![],
        removed: ice::live_files(&wh, &t5).await.unwrap(),
        summary: HashMap::new(),
    };
    let err = ice::prepare_commit(&wh, &t5, lossy).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Invalid, false), "{err}");
    assert_eq!(err.to_string(), format!("table {NS}.metrics: a replace must keep the rows: adds 0 rows, removes 10"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dropped_and_recreated_table_gets_a_folder_of_its_own(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let first = create(&pool, &wh, "events").await;
    let first = append(&pool, &wh, &first, &commit1(), "first-life").await;
    let old_files: Vec<String> =
        ice::live_files(&wh, &first).await.unwrap().into_iter().map(|f| f.data_file.file_path().to_string()).collect();
    assert!(!old_files.is_empty());

    // Dropped from the catalog (as PyIceberg's drop_table does), then created again.
    sqlx::query(
        "DELETE FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = 'events'",
    )
    .bind(&wh.catalog_name)
    .bind(NS)
    .execute(&pool)
    .await
    .unwrap();
    let second = create(&pool, &wh, "events").await;
    assert_ne!(second.metadata.location(), first.metadata.location());
    assert!(second.metadata.location().starts_with(&format!("{}/{NS}/events-", wh.root_url())));
    assert_eq!(second.current_snapshot_id(), None, "the new table starts empty");
    let second = append(&pool, &wh, &second, &commit2(), "second-life").await;
    assert_readers_see(&pool, &wh, &second, &expected(&[&commit2()])).await;

    // The old table's files are untouched: a reader holding its metadata still reads it.
    for path in &old_files {
        assert!(!path.starts_with(second.metadata.location()), "{path}");
        assert!(wh.file_io.exists(path).await.unwrap(), "{path} is gone");
    }
    assert!(wh.file_io.exists(&first.metadata_location).await.unwrap());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_missing_metadata_or_manifest_list_is_not_found_and_a_dropped_table_too(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "events").await;
    let table = append(&pool, &wh, &created, &commit1(), "first").await;

    let manifest_list = table.metadata.current_snapshot().unwrap().manifest_list().to_string();
    std::fs::remove_file(manifest_list.strip_prefix("file://").unwrap()).unwrap();
    let err = ice::live_files(&wh, &table).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::NotFound, false), "{err}");
    assert_eq!(err.to_string(), format!("table {NS}.events: reading manifest list {manifest_list}: no such file"));

    std::fs::remove_file(table.metadata_location.strip_prefix("file://").unwrap()).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let err = ice::load_table(&mut conn, &wh, NS, "events").await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::NotFound, false), "{err}");
    assert_eq!(
        err.to_string(),
        format!("table {NS}.events: reading metadata file {}: no such file", table.metadata_location)
    );
    // A table the catalog does not have is no error at all.
    assert!(ice::load_table(&mut conn, &wh, NS, "never-made").await.unwrap().is_none());
    drop(conn);

    // A commit on a table dropped meanwhile is not a race to retry.
    let other = create(&pool, &wh, "clicks").await;
    let files = ice::write_data_files(&wh, &other, batch(&other, &commit2())).await.unwrap();
    let prepared = ice::prepare_append(&wh, &other, files, commit_summary("late")).await.unwrap();
    sqlx::query("DELETE FROM iceberg_tables WHERE catalog_name = $1 AND table_name = 'clicks'")
        .bind(&wh.catalog_name)
        .execute(&pool)
        .await
        .unwrap();
    let err = swap(&pool, &wh, &prepared).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::NotFound, false), "{err}");
    assert_eq!(err.to_string(), format!("table {NS}.clicks was dropped before the commit"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_warehouse_folder_that_cannot_be_written_is_a_storage_failure(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    // Tests run as root, whom chmod does not stop: a regular file where a
    // folder must be stops everyone.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let err = Warehouse::local("dest", &blocker.join("warehouse")).unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Storage, false), "{err}");

    // A warehouse that opened, whose namespace folder is a file: creating a
    // table fails on its first metadata file, and leaves no catalog row.
    let wh = Warehouse::local("dest", &dir.path().join("warehouse")).unwrap();
    std::fs::write(dir.path().join("warehouse").join(NS), b"not a folder").unwrap();
    let err = ice::create_table(Scope::system(&pool), &wh, NS, "events", schema(), &[]).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Storage, false), "{err}");
    assert!(!err.is_catalog_database(), "{err}");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("table {NS}.events: writing the first metadata file file://")), "{shown}");
    assert!(shown.contains("Not a directory"), "the OS error says why: {shown}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM iceberg_tables").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);

    // A table whose data folder became a file: writing data files fails.
    let ok = Warehouse::local("dest-2", &dir.path().join("warehouse-2")).unwrap();
    let table = create(&pool, &ok, "orders").await;
    let data_dir = format!("{}/data", table.metadata.location().strip_prefix("file://").unwrap());
    std::fs::write(&data_dir, b"not a folder").unwrap();
    let err = ice::write_data_files(&ok, &table, batch(&table, &commit1())).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Storage, false), "{err}");
    assert!(err.to_string().starts_with(&format!("table {NS}.orders: writing a data file: ")), "{err}");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unreachable_object_store_is_a_transient_storage_failure(pool: PgPool) {
    // A port nothing listens on: the connection is refused at once, and
    // opendal's own retries (about 7 s) give up.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let access = S3Access {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: None,
        access_key_id: Some("AKID".into()),
        secret_access_key: Some("secret".into()),
    };
    let wh = Warehouse::open("dest", "s3://bucket-1/lake", &access).unwrap();
    let err = ice::create_table(Scope::system(&pool), &wh, NS, "events", schema(), &[]).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Storage, true), "{err:?}");
    assert!(!err.is_catalog_database());
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("table {NS}.events: writing the first metadata file s3://bucket-1/lake/")),
        "{shown}"
    );
    assert!(shown.ends_with(": the object store failed: connection refused"), "{shown}");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_names_and_specs_are_invalid_and_create_nothing(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let scope = Scope::system(&pool);
    for (namespace, name) in [(NS, "bad/name"), (NS, "../escape"), ("..", "events"), (NS, "")] {
        let err = ice::create_table(scope, &wh, namespace, name, schema(), &[]).await.unwrap_err();
        assert_eq!(kind(&err), (LakeErrorKind::Invalid, false), "{namespace:?}.{name:?}: {err}");
    }
    let err = ice::create_table(scope, &wh, NS, "events", schema(), &[("nope", Transform::Day)]).await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::Invalid, false), "{err}");
    assert_eq!(err.to_string(), format!(r#"table {NS}.events: no column "nope" to partition by"#));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM iceberg_tables").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);
    assert!(!dir.path().join(NS).exists(), "nothing written for a refused table");
}

#[sqlx::test(migrations = "../migrations")]
async fn catalog_database_errors_map_by_their_sqlstate(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    // A statement timeout: the database is struggling, try again later.
    sqlx::query("SET statement_timeout = '20ms'").execute(&mut *conn).await.unwrap();
    let err = LakeError::from(sqlx::query("SELECT pg_sleep(2)").execute(&mut *conn).await.unwrap_err());
    assert_eq!(kind(&err), (LakeErrorKind::Storage, true), "{err}");
    assert!(err.is_catalog_database());
    assert!(err.to_string().ends_with("(57014)"), "{err}");
    sqlx::query("RESET statement_timeout").execute(&mut *conn).await.unwrap();

    // A concurrent creator's row: a conflict.
    let insert = "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location)
                  VALUES ('dest', 'ns', 't', 'file:///x/metadata/00000-a.metadata.json')";
    sqlx::query(insert).execute(&mut *conn).await.unwrap();
    let err = LakeError::from(sqlx::query(insert).execute(&mut *conn).await.unwrap_err());
    assert_eq!(kind(&err), (LakeErrorKind::Conflict, true), "{err}");
    assert!(!err.is_catalog_database());

    // A database without our tables: no retry fixes that.
    let err = LakeError::from(sqlx::query("SELECT * FROM no_such_table").execute(&mut *conn).await.unwrap_err());
    assert_eq!(kind(&err), (LakeErrorKind::Storage, false), "{err}");
    assert!(err.is_catalog_database());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_batch_over_many_partitions_lands_whole(pool: PgPool) {
    // More day partitions than writers are open at once: written a group at a time.
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let table = create(&pool, &wh, "wide").await;
    let rows: Vec<Row> = (0..150).map(|i| row(i, Some(DAY0 + i * DAY), Some("x"), None)).collect();
    let files = ice::write_data_files(&wh, &table, batch(&table, &rows)).await.unwrap();
    assert_eq!(files.len(), 150, "one file per day");
    assert_eq!(files.iter().map(|f| f.record_count()).sum::<u64>(), 150);
    let prepared = ice::prepare_append(&wh, &table, files, commit_summary("wide-1")).await.unwrap();
    swap(&pool, &wh, &prepared).await.unwrap();
    assert_readers_see(&pool, &wh, &prepared.into_loaded(), &expected(&[&rows])).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn added_columns_read_as_null_in_rows_written_before(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let table = create(&pool, &wh, "orders").await;
    let table = append(&pool, &wh, &table, &commit1(), "c1").await;

    let scope = Scope::system(&pool);
    let string = Type::Primitive(PrimitiveType::String);
    let evolved = ice::add_columns(scope, &wh, &table, &[("note", string.clone())]).await.unwrap();
    // Already there: refused, and nothing moves.
    let again = ice::add_columns(scope, &wh, &evolved, &[("note", string.clone())]).await.unwrap_err();
    assert_eq!(
        (kind(&again), again.to_string()),
        ((LakeErrorKind::Invalid, false), format!("table {NS}.orders already has a column \"note\""))
    );
    // Built on the old pointer: a lost race.
    let stale = ice::add_columns(scope, &wh, &table, &[("other", string)]).await.unwrap_err();
    assert_eq!(kind(&stale), (LakeErrorKind::Conflict, true), "{stale}");

    let schema = evolved.metadata.current_schema();
    assert_eq!((schema.field_by_name("note").unwrap().id, evolved.metadata.last_column_id()), (5, 5));
    assert_eq!(reload(&pool, &wh, "orders").await.metadata_location, evolved.metadata_location);
    let read = read_externally(&pool, &wh, "orders").await;
    assert_eq!(read["columns"], json!(["id", "ts", "name", "amount", "note"]));
    let want: Vec<Value> = expected(&[&commit1()])
        .into_iter()
        .map(|mut r| {
            r.as_array_mut().unwrap().push(Value::Null);
            r
        })
        .collect();
    assert_eq!(sorted_by_id(&read["pyiceberg"]), want, "PyIceberg rows");
    assert_eq!(sorted_by_id(&read["duckdb"]), want, "DuckDB rows");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dead_letter_table_of_an_earlier_release_gets_the_new_columns(pool: PgPool) {
    use icehouse_api::pipelines::{ColumnMapping, CompiledMapping, Mapping};
    use icehouse_workers::mapping::{dead_letter_schema, DeadLetterBuilder, ErrorKind, KafkaMessage, Rejection, Stage};

    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    // The dead-letter schema before `truncated`, `key_bytes` and `value_bytes`.
    let first_release: Vec<_> = dead_letter_schema().as_struct().fields()[..12].to_vec();
    let old = Schema::builder().with_fields(first_release).build().unwrap();
    let scope = Scope::system(&pool);
    ice::create_table(scope, &wh, NS, "orders_dead_letter", old, &[]).await.unwrap();
    let column = ColumnMapping {
        name: "id".into(),
        column_type: "long".into(),
        path: "$.id".into(),
        nullable: false,
        timestamp_format: None,
    };
    let mapping = CompiledMapping::compile(&Mapping { columns: vec![column] }).unwrap();
    let (_, dead) = ice::create_pipeline_tables(scope, &wh, NS, "orders", &mapping, &[]).await.unwrap();

    // The columns come last with fresh ids; the map's own ids stay the table's.
    let schema = dead.metadata.current_schema();
    let ids: Vec<(String, i32)> = schema.as_struct().fields().iter().map(|f| (f.name.clone(), f.id)).collect();
    assert_eq!(
        &ids[11..],
        [("received_at".into(), 12), ("truncated".into(), 15), ("key_bytes".into(), 16), ("value_bytes".into(), 17)]
    );
    assert_eq!(reload(&pool, &wh, "orders_dead_letter").await.metadata_location, dead.metadata_location);

    // Rows land in it, cut as configured.
    let mut rows = DeadLetterBuilder::new("p", dead.arrow_schema().unwrap(), 4).unwrap();
    let msg = KafkaMessage { topic: "orders".into(), value: Some(b"0123456789".to_vec()), ..Default::default() };
    let why = Rejection { stage: Stage::Decode, kind: ErrorKind::TooLarge, message: "too large".into() };
    rows.push(&msg, &why, chrono::Utc::now());
    let files = ice::write_data_files(&wh, &dead, rows.finish()).await.unwrap();
    let prepared = ice::prepare_append(&wh, &dead, files, commit_summary("dl-1")).await.unwrap();
    swap(&pool, &wh, &prepared).await.unwrap();

    // A second look changes nothing.
    let (_, again) = ice::create_pipeline_tables(scope, &wh, NS, "orders", &mapping, &[]).await.unwrap();
    assert_eq!(again.metadata_location, prepared.new_metadata_location);
}

#[sqlx::test(migrations = "../migrations")]
async fn metadata_that_points_outside_its_table_or_is_too_big_is_not_read(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(&dir);
    let created = create(&pool, &wh, "events").await;
    let table = append(&pool, &wh, &created, &commit1(), "first").await;
    let text = std::fs::read_to_string(table.metadata_location.strip_prefix("file://").unwrap()).unwrap();
    let good: Value = serde_json::from_str(&text).unwrap();
    let folder = format!("{}/metadata", table.metadata.location());

    // Points the catalog at a metadata file of the tenant's making, and loads it.
    let planted = |name: &str, bytes: Vec<u8>| {
        let (pool, wh, location) = (pool.clone(), wh.clone(), format!("{folder}/{name}"));
        async move {
            std::fs::write(location.strip_prefix("file://").unwrap(), bytes).unwrap();
            sqlx::query("UPDATE iceberg_tables SET metadata_location = $1 WHERE table_name = 'events'")
                .bind(&location)
                .execute(&pool)
                .await
                .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            (
                location.clone(),
                ice::load_table(&mut conn, &wh, NS, "events").await.map(|t| t.unwrap().metadata_location),
            )
        }
    };
    let uuid = || uuid::Uuid::now_v7();
    let outside = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            outside(&|v| v["snapshots"][0]["manifest-list"] = json!("file:///etc/passwd")),
            "a manifest list file:///etc/passwd lies outside".into(),
        ),
        (
            outside(&|v| {
                v["snapshots"][0]["manifest-list"] = json!(format!("{}/../../x.avro", table.metadata.location()))
            }),
            "a manifest list".into(),
        ),
        (
            outside(&|v| v["metadata-log"] = json!([{"metadata-file": "s3://elsewhere/m.json", "timestamp-ms": 1}])),
            "a previous metadata file s3://elsewhere/m.json lies outside".into(),
        ),
        (
            // A location that would make every path look inside it.
            outside(&|v| v["location"] = json!("file://")),
            "the table location file: is not the folder the metadata file is in".into(),
        ),
        (vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "is compressed".into()),
        (b"{\"format-version\": 2".to_vec(), "is not valid".into()),
    ];
    for (n, (bytes, says)) in cases.into_iter().enumerate() {
        let (location, loaded) = planted(&format!("{:05}-{}.metadata.json", 10 + n, uuid()), bytes).await;
        let err = loaded.unwrap_err();
        assert_eq!(kind(&err), (LakeErrorKind::InvalidMetadata, false), "{err}");
        assert!(err.to_string().contains(&location) && err.to_string().contains(&says), "{says}: {err}");
    }
    // Past the cap (a sparse file): refused by its size, before it is read.
    let name = format!("00019-{}.metadata.json", uuid());
    let path = format!("{}/{name}", folder.strip_prefix("file://").unwrap());
    std::fs::write(&path, &text).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_len(ice::MAX_METADATA_BYTES + 1).unwrap();
    let location = format!("{folder}/{name}");
    sqlx::query("UPDATE iceberg_tables SET metadata_location = $1 WHERE table_name = 'events'")
        .bind(&location)
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let err = ice::load_table(&mut conn, &wh, NS, "events").await.unwrap_err();
    assert_eq!(kind(&err), (LakeErrorKind::InvalidMetadata, false), "{err}");
    assert!(err.to_string().contains("more than the 512 MiB Icehouse reads"), "{err}");
    drop(conn);

    // The file as Icehouse wrote it still loads.
    let (location, loaded) = planted(&format!("00020-{}.metadata.json", uuid()), text.into_bytes()).await;
    assert_eq!(loaded.unwrap(), location);
}
