//! Snapshot commits built from iceberg-rust's public spec writers, because
//! its own `Transaction::commit` cannot be fenced (see the module above) and
//! cannot replace or delete files at all in 0.10.
//!
//! [`prepare_commit`] is the one machine for every kind of commit: an append
//! (ingestion), a replace (compaction: same rows, fewer files), a delete
//! (retention dropping whole files) or an overwrite. It writes, under the
//! table's `metadata/` folder:
//! - one manifest of the ADDED files;
//! - for each current manifest that lists a file being removed, a rewrite of
//!   it where that file is DELETED and the others EXISTING (only those
//!   manifests are read, so an append reads no manifest at all);
//! - the manifest list: the new manifests, then every other current manifest
//!   carried over as it is (one file read, however long the history);
//! - the next metadata file, with the snapshot as `main`.
//!
//! Nothing is visible until [`super::swap_pointer`] moves the table's pointer.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestFile, ManifestList, ManifestListWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotSummaryCollector, Summary, TableMetadata, TableMetadataBuilder,
    TableProperties, MAIN_BRANCH,
};
use iceberg::MetadataLocation;
use uuid::Uuid;

use super::error::{ensure_valid, ResultExt};
use super::{LakeError, LakeResult, LoadedTable, Warehouse};

/// Snapshot summary key holding the id of the commit that wrote it, so a
/// commit whose outcome is unknown can be checked before it is retried.
pub const COMMIT_ID_KEY: &str = "icehouse.commit-id";

const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// What a commit changes. Build one directly for replace/delete commits;
/// ingestion uses [`prepare_append`].
#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub operation: Operation,
    /// New data files (from [`super::write_data_files`]).
    pub added: Vec<DataFile>,
    /// Files of the current snapshot to remove (from [`live_files`]).
    pub removed: Vec<LiveFile>,
    /// Extra snapshot summary entries (commit id, offsets, epoch…). The
    /// standard counts and totals are computed and win over these.
    pub summary: HashMap<String, String>,
}

/// A data file the current snapshot references, with the manifest that lists it.
#[derive(Clone, Debug)]
pub struct LiveFile {
    pub manifest_path: String,
    pub data_file: DataFile,
    /// Snapshot that added the file.
    pub snapshot_id: i64,
    /// Data sequence number of the file.
    pub sequence_number: i64,
}

/// A snapshot written to storage and waiting for its pointer swap.
#[derive(Clone, Debug)]
pub struct PreparedCommit {
    pub namespace: String,
    pub name: String,
    /// The metadata file this commit was built on: the swap's expected value.
    pub previous_metadata_location: String,
    pub new_metadata_location: String,
    pub metadata: TableMetadata,
    pub snapshot_id: i64,
    /// Manifests, manifest list and metadata file this preparation wrote
    /// (not the data files), for [`discard_prepared`].
    pub written_files: Vec<String>,
    /// Old metadata files the new metadata no longer lists, for [`finish_commit`].
    pub expired_metadata_files: Vec<String>,
}

impl PreparedCommit {
    /// The table as of this commit, once its swap has been committed.
    pub fn into_loaded(self) -> LoadedTable {
        LoadedTable {
            namespace: self.namespace,
            name: self.name,
            metadata_location: self.new_metadata_location,
            metadata: self.metadata,
        }
    }
}

/// A fast append of `files` on top of `table`, with `summary` entries in the
/// snapshot summary. Reads only the current manifest list, so commit latency
/// stays flat as the history grows.
pub async fn prepare_append(
    wh: &Warehouse,
    table: &LoadedTable,
    files: Vec<DataFile>,
    summary: HashMap<String, String>,
) -> LakeResult<PreparedCommit> {
    prepare_commit(wh, table, CommitRequest { operation: Operation::Append, added: files, removed: vec![], summary })
        .await
}

/// Writes the manifests, manifest list and metadata file of a new snapshot
/// on top of `table` (see the module docs). On a lost swap, call it again
/// with the same request on the freshly loaded table. A `Conflict` here: the
/// files to remove are no longer live (another commit removed them).
pub async fn prepare_commit(wh: &Warehouse, table: &LoadedTable, request: CommitRequest) -> LakeResult<PreparedCommit> {
    let ident = table.ident();
    build_commit(wh, table, request).await.map_err(|e| e.context(format!("table {ident}")))
}

async fn build_commit(wh: &Warehouse, table: &LoadedTable, request: CommitRequest) -> LakeResult<PreparedCommit> {
    let base = &table.metadata;
    ensure_valid!(
        base.format_version() == FormatVersion::V2,
        "format {}; only v2 tables can be committed to",
        base.format_version()
    );
    check_request(base, &request)?;
    let CommitRequest { operation, added, removed, summary: extra_summary } = request;

    let file_io = &wh.file_io;
    let schema = base.current_schema().clone();
    let spec = base.default_partition_spec().clone();
    let parent = base.current_snapshot().cloned();
    let parent_id = parent.as_ref().map(|s| s.snapshot_id());
    let snapshot_id = new_snapshot_id(base);
    let sequence_number = base.next_sequence_number();
    let commit_uuid = Uuid::now_v7();
    let metadata_dir = format!("{}/metadata", base.location());
    let mut manifest_count = 0;
    let mut next_manifest_path = || {
        manifest_count += 1;
        format!("{metadata_dir}/{commit_uuid}-m{}.avro", manifest_count - 1)
    };

    let mut collector = SnapshotSummaryCollector::default();
    collector.set_partition_summary_limit(
        base.properties()
            .get(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT),
    );
    let mut written_files = Vec::new();
    let mut new_manifests = Vec::new();

    if !added.is_empty() {
        let path = next_manifest_path();
        let output = file_io.new_output(&path).with_context(|| format!("writing manifest {path}"))?;
        let mut writer =
            ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), (*spec).clone()).build_v2_data();
        for file in added {
            collector.add_file(&file, schema.clone(), spec.clone());
            writer.add_file(file, sequence_number).context("adding a data file to the manifest")?;
        }
        written_files.push(path.clone());
        new_manifests.push(writer.write_manifest_file().await.with_context(|| format!("writing manifest {path}"))?);
    }

    let current_manifests = match &parent {
        Some(snapshot) => read_manifest_list(wh, snapshot.manifest_list()).await?,
        None => vec![],
    };
    let mut to_remove: HashMap<&str, HashSet<&str>> = HashMap::new();
    for file in &removed {
        to_remove.entry(file.manifest_path.as_str()).or_default().insert(file.data_file.file_path());
    }
    let mut carried = Vec::new();
    for manifest in current_manifests {
        let Some(paths) = to_remove.remove(manifest.manifest_path.as_str()) else {
            // A manifest without live files only recorded its own snapshot's
            // deletions; the new snapshot does not need it.
            if manifest.has_added_files() || manifest.has_existing_files() {
                carried.push(manifest);
            }
            continue;
        };
        let path = next_manifest_path();
        let rewritten = rewrite_without(wh, base, &manifest, &paths, &path, snapshot_id, &mut collector).await?;
        written_files.push(path);
        new_manifests.push(rewritten);
    }
    if let Some(path) = to_remove.keys().next() {
        return Err(LakeError::conflict(format!(
            "cannot remove files listed in manifest {path}: the current snapshot no longer has it \
             (another commit rewrote it); list the live files again"
        )));
    }

    let manifest_list_path = format!("{metadata_dir}/snap-{snapshot_id}-0-{commit_uuid}.avro");
    let writing_list = || format!("writing manifest list {manifest_list_path}");
    let list_output = file_io.new_output(&manifest_list_path).with_context(writing_list)?;
    let mut list_writer = ManifestListWriter::v2(
        list_output.writer().await.with_context(writing_list)?,
        snapshot_id,
        parent_id,
        sequence_number,
    );
    list_writer.add_manifests(new_manifests.into_iter().chain(carried)).with_context(writing_list)?;
    list_writer.close().await.with_context(writing_list)?;
    written_files.push(manifest_list_path.clone());

    // Caller's entries first: the computed counts and totals must not be shadowed.
    let mut properties = extra_summary;
    properties.extend(collector.build());
    add_totals(&mut properties, parent.as_ref().map(|s| s.summary()));
    // Never behind the previous commit, whatever this host's clock says.
    let timestamp_ms = chrono::Utc::now().timestamp_millis().max(base.last_updated_ms());
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent_id)
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(timestamp_ms)
        .with_manifest_list(manifest_list_path)
        .with_summary(Summary { operation, additional_properties: properties })
        .with_schema_id(base.current_schema_id())
        .build();

    let built = TableMetadataBuilder::new_from_metadata(base.clone(), Some(table.metadata_location.clone()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)
        .and_then(|builder| builder.build())
        .context("building the next metadata")?;
    let new_metadata_location = write_next_metadata(wh, table, &built.metadata).await?;
    written_files.push(new_metadata_location.clone());

    let delete_after_commit = built.metadata.properties().get(DELETE_AFTER_COMMIT).is_some_and(|v| v == "true");
    let expired_metadata_files = if delete_after_commit {
        built.expired_metadata_logs.into_iter().map(|log| log.metadata_file).collect()
    } else {
        vec![]
    };

    Ok(PreparedCommit {
        namespace: table.namespace.clone(),
        name: table.name.clone(),
        previous_metadata_location: table.metadata_location.clone(),
        new_metadata_location,
        metadata: built.metadata,
        snapshot_id,
        written_files,
        expired_metadata_files,
    })
}

/// Writes `metadata` as the metadata file that follows `table`'s current
/// one (the next version number, a new id), invisible until a pointer swap;
/// returns its location.
pub(super) async fn write_next_metadata(
    wh: &Warehouse,
    table: &LoadedTable,
    metadata: &TableMetadata,
) -> LakeResult<String> {
    let location = MetadataLocation::from_str(&table.metadata_location)
        .map_err(|_| LakeError::invalid(format!("unexpected metadata file name {}", table.metadata_location)))?
        .with_next_version()
        .with_new_metadata(metadata);
    let new_location = location.to_string();
    metadata.write_to(&wh.file_io, &location).await.with_context(|| format!("writing metadata file {new_location}"))?;
    Ok(new_location)
}

/// Rejects requests that would write a snapshot readers misinterpret.
fn check_request(base: &TableMetadata, request: &CommitRequest) -> LakeResult<()> {
    // DataFile does not expose its spec id (iceberg-rust 0.10); the arity of
    // its partition tuple is what can be checked. Specs never evolve yet.
    let partition_arity = base.default_partition_type().fields().len();
    for file in &request.added {
        ensure_valid!(
            file.content_type() == DataContentType::Data,
            "only data files can be added, not {:?}",
            file.content_type()
        );
        ensure_valid!(
            file.partition().fields().len() == partition_arity,
            "data file {} has {} partition values, the table's spec has {partition_arity}",
            file.file_path(),
            file.partition().fields().len()
        );
    }
    let rows = |files: &mut dyn Iterator<Item = &DataFile>| files.map(|f| f.record_count()).sum::<u64>();
    match request.operation {
        Operation::Append => {
            ensure_valid!(!request.added.is_empty(), "an append needs files to add");
            ensure_valid!(request.removed.is_empty(), "an append cannot remove files");
        }
        Operation::Replace => {
            ensure_valid!(!request.removed.is_empty(), "a replace needs files to remove");
            let (added, removed) =
                (rows(&mut request.added.iter()), rows(&mut request.removed.iter().map(|f| &f.data_file)));
            ensure_valid!(added == removed, "a replace must keep the rows: adds {added} rows, removes {removed}");
        }
        Operation::Delete => {
            ensure_valid!(request.added.is_empty(), "a delete cannot add files");
            ensure_valid!(!request.removed.is_empty(), "a delete needs files to remove");
        }
        Operation::Overwrite => {
            ensure_valid!(
                !request.added.is_empty() || !request.removed.is_empty(),
                "an overwrite needs files to change"
            );
        }
    }
    Ok(())
}

/// Rewrites `manifest` with the files in `paths` marked DELETED and every
/// other live file EXISTING, keeping their original snapshot and sequence
/// numbers.
async fn rewrite_without(
    wh: &Warehouse,
    base: &TableMetadata,
    manifest: &ManifestFile,
    paths: &HashSet<&str>,
    new_path: &str,
    snapshot_id: i64,
    collector: &mut SnapshotSummaryCollector,
) -> LakeResult<ManifestFile> {
    ensure_valid!(
        manifest.content == ManifestContentType::Data,
        "cannot remove files from delete manifest {}",
        manifest.manifest_path
    );
    let schema = base.current_schema().clone();
    let spec = base
        .partition_spec_by_id(manifest.partition_spec_id)
        .ok_or_else(|| {
            LakeError::invalid(format!(
                "manifest {} has unknown partition spec {}",
                manifest.manifest_path, manifest.partition_spec_id
            ))
        })?
        .clone();
    let content = load_manifest(wh, manifest).await?;
    let writing = || format!("writing manifest {new_path}");
    let output = wh.file_io.new_output(new_path).with_context(writing)?;
    let mut writer =
        ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), (*spec).clone()).build_v2_data();
    let mut found = 0;
    for entry in content.entries().iter().filter(|e| e.is_alive()) {
        let sequence_number = entry.sequence_number().ok_or_else(|| no_number(manifest, "sequence number"))?;
        if paths.contains(entry.file_path()) {
            collector.remove_file(entry.data_file(), schema.clone(), spec.clone());
            writer
                .add_delete_file(entry.data_file().clone(), sequence_number, entry.file_sequence_number)
                .with_context(writing)?;
            found += 1;
        } else {
            let added_by = entry.snapshot_id().ok_or_else(|| no_number(manifest, "snapshot id"))?;
            writer
                .add_existing_file(entry.data_file().clone(), added_by, sequence_number, entry.file_sequence_number)
                .with_context(writing)?;
        }
    }
    if found != paths.len() {
        return Err(LakeError::conflict(format!(
            "{} of the files to remove are no longer live in {} (removed by another commit?)",
            paths.len() - found,
            manifest.manifest_path
        )));
    }
    writer.write_manifest_file().await.with_context(writing)
}

fn no_number(manifest: &ManifestFile, what: &str) -> LakeError {
    LakeError::invalid(format!("manifest {} has an entry without a {what}", manifest.manifest_path))
}

async fn load_manifest(wh: &Warehouse, manifest: &ManifestFile) -> LakeResult<iceberg::spec::Manifest> {
    let path = &manifest.manifest_path;
    match manifest.load_manifest(&wh.file_io).await {
        Ok(content) => Ok(content),
        Err(e) => Err(LakeError::read_failed(&wh.file_io, path, e).await.context(format!("reading manifest {path}"))),
    }
}

async fn read_manifest_list(wh: &Warehouse, path: &str) -> LakeResult<Vec<ManifestFile>> {
    let reading = || format!("reading manifest list {path}");
    let input = wh.file_io.new_input(path).with_context(reading)?;
    let bytes = match input.read().await {
        Ok(bytes) => bytes,
        Err(e) => return Err(LakeError::read_failed(&wh.file_io, path, e).await.context(reading())),
    };
    let list = ManifestList::parse_with_version(&bytes, FormatVersion::V2)
        .map_err(|e| LakeError::invalid(format!("{}: {e}", reading())))?;
    Ok(list.consume_entries().into_iter().collect())
}

/// Every data file the table's current snapshot references. Reads all data
/// manifests: for maintenance (picking files to compact or expire), never on
/// the ingestion path.
pub async fn live_files(wh: &Warehouse, table: &LoadedTable) -> LakeResult<Vec<LiveFile>> {
    let Some(snapshot) = table.metadata.current_snapshot() else {
        return Ok(vec![]);
    };
    let in_table = |e: LakeError| e.context(format!("table {}", table.ident()));
    let mut files = Vec::new();
    for manifest in read_manifest_list(wh, snapshot.manifest_list()).await.map_err(in_table)? {
        if manifest.content != ManifestContentType::Data {
            continue;
        }
        let content = load_manifest(wh, &manifest).await.map_err(in_table)?;
        for entry in content.entries().iter().filter(|e| e.is_alive()) {
            files.push(LiveFile {
                manifest_path: manifest.manifest_path.clone(),
                data_file: entry.data_file().clone(),
                snapshot_id: entry.snapshot_id().ok_or_else(|| in_table(no_number(&manifest, "snapshot id")))?,
                sequence_number: entry
                    .sequence_number()
                    .ok_or_else(|| in_table(no_number(&manifest, "sequence number")))?,
            });
        }
    }
    Ok(files)
}

/// Whether the snapshot history of `main` holds a commit with this id.
pub fn has_commit(metadata: &TableMetadata, commit_id: &str) -> bool {
    let mut next = metadata.current_snapshot_id();
    while let Some(snapshot) = next.and_then(|id| metadata.snapshot_by_id(id)) {
        if snapshot.summary().additional_properties.get(COMMIT_ID_KEY).is_some_and(|v| v == commit_id) {
            return true;
        }
        next = snapshot.parent_snapshot_id();
    }
    false
}

/// After the transaction holding the swap has committed: deletes the
/// metadata files the new metadata dropped from its log. Best effort: a
/// leftover file is an orphan for maintenance, never an error.
pub async fn finish_commit(wh: &Warehouse, commit: &PreparedCommit) {
    for path in &commit.expired_metadata_files {
        if let Err(e) = wh.file_io.delete(path).await {
            tracing::warn!(path, error = %e, "could not delete an expired metadata file");
        }
    }
}

/// Deletes what [`prepare_commit`] wrote, for a commit that certainly did not
/// land (its swap returned `false`, or its transaction rolled back). Never
/// call it when the outcome is unknown: check [`has_commit`] first. Data
/// files are left alone: they go into the next attempt.
pub async fn discard_prepared(wh: &Warehouse, commit: &PreparedCommit) {
    for path in &commit.written_files {
        if let Err(e) = wh.file_io.delete(path).await {
            tracing::warn!(path, error = %e, "could not delete a file of a discarded commit");
        }
    }
}

/// A random positive id no snapshot of the table has.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & i64::MAX as u64) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// The `total-*` summary entries: the previous snapshot's total plus what
/// this one added minus what it removed. iceberg-rust's own version is
/// crate-private and refuses `replace`. Like Java, a total the previous
/// snapshot lacks (or cannot be parsed) stays unknown rather than wrong.
fn add_totals(properties: &mut HashMap<String, String>, previous: Option<&Summary>) {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ];
    let number = |map: &HashMap<String, String>, key: &str| match map.get(key) {
        None => Some(0),
        Some(v) => v.parse::<u64>().ok(),
    };
    for (total, added, removed) in TOTALS {
        let previous_total = match previous {
            None => Some(0),
            Some(prev) => prev.additional_properties.get(total).and_then(|v| v.parse::<u64>().ok()),
        };
        match (previous_total, number(properties, added), number(properties, removed)) {
            (Some(prev), Some(add), Some(rem)) => {
                properties.insert(total.to_string(), (prev + add).saturating_sub(rem).to_string());
            }
            _ => {
                properties.remove(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn totals_add_to_the_previous_snapshot() {
        let mut first = map(&[("added-data-files", "2"), ("added-records", "10"), ("added-files-size", "100")]);
        add_totals(&mut first, None);
        assert_eq!(first["total-data-files"], "2");
        assert_eq!(first["total-records"], "10");
        assert_eq!(first["total-files-size"], "100");
        assert_eq!(first["total-delete-files"], "0");
        assert_eq!(first["total-position-deletes"], "0");
        assert_eq!(first["total-equality-deletes"], "0");

        let previous = Summary { operation: Operation::Append, additional_properties: first };
        let mut replace = map(&[
            ("added-data-files", "1"),
            ("deleted-data-files", "2"),
            ("added-records", "10"),
            ("deleted-records", "10"),
            ("added-files-size", "60"),
            ("removed-files-size", "100"),
        ]);
        add_totals(&mut replace, Some(&previous));
        assert_eq!(replace["total-data-files"], "1");
        assert_eq!(replace["total-records"], "10");
        assert_eq!(replace["total-files-size"], "60");
    }

    #[test]
    fn a_total_the_previous_snapshot_lacks_stays_unknown() {
        let previous = Summary { operation: Operation::Append, additional_properties: map(&[("total-records", "5")]) };
        let mut next = map(&[("added-records", "3"), ("total-data-files", "999")]);
        add_totals(&mut next, Some(&previous));
        assert_eq!(next["total-records"], "8");
        assert!(!next.contains_key("total-data-files"), "a caller's bogus total must not survive");
    }
}
