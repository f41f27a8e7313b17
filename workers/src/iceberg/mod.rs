//! The Iceberg layer of the data plane: tables in the Postgres JDBC-catalog
//! layout, Parquet data files, and our own snapshot commit.
//!
//! Why our own commit path: iceberg-rust 0.10's `Transaction::commit` reloads
//! the table and re-applies its actions on whatever snapshot is newest, on
//! every retry, so a writer holding stale state (a worker that lost its lease)
//! still lands its files. Exactly-once needs the opposite: the metadata
//! pointer swap must be a compare-and-swap on the metadata location the
//! writer built on, inside the same Postgres transaction that checks the
//! lease epoch and stores the offsets (the exactly-once protocol). So a
//! commit here has two halves:
//!
//! 1. [`prepare_append`] (or the general [`prepare_commit`]) writes the
//!    manifest, the manifest list and the next metadata file, touching no
//!    shared state; the files are invisible until the pointer points at them.
//! 2. [`swap_pointer`] compare-and-swaps `iceberg_tables.metadata_location`
//!    in the caller's transaction. `false` means another writer won: reload,
//!    re-prepare with the same data files, try again. After the caller's
//!    transaction commits, [`finish_commit`] deletes metadata files the table
//!    no longer lists (`write.metadata.delete-after-commit.enabled`).
//!
//! A commit whose outcome is unknown is checked with [`has_commit`] (by the
//! `icehouse.commit-id` summary key) before any retry.
//!
//! The pieces used are iceberg-rust's public spec writers
//! (`ManifestWriterBuilder`, `ManifestListWriter`, `Snapshot::builder`,
//! `TableMetadataBuilder`), which is also what replace and delete commits
//! (compaction, retention) need and the library cannot do yet.

mod catalog;
mod commit;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

pub use catalog::{create_table, list_tables, load_table, partition_by, swap_pointer};
pub use commit::{
    discard_prepared, finish_commit, has_commit, live_files, prepare_append, prepare_commit, CommitRequest, LiveFile,
    PreparedCommit, COMMIT_ID_KEY,
};
pub use write::write_data_files;

/// Where a destination's tables live. Local disk for now: every table is a
/// folder `<root>/<namespace>/<table>` addressed as `file://` URLs, which is
/// what external readers (PyIceberg, DuckDB, Spark) resolve too.
#[derive(Clone, Debug)]
pub struct Warehouse {
    /// The JDBC-catalog `catalog_name`: the destination id.
    pub catalog_name: String,
    /// Absolute path of the warehouse root folder.
    pub root: PathBuf,
    pub file_io: FileIO,
}

impl Warehouse {
    /// A warehouse on local disk. The root must be absolute; it is created if missing.
    pub fn local(catalog_name: &str, root: &Path) -> anyhow::Result<Self> {
        if catalog_name.is_empty() {
            bail!("catalog name must not be empty");
        }
        if !root.is_absolute() {
            bail!("warehouse root must be an absolute path, got {}", root.display());
        }
        let root_str = root.to_str().context("warehouse root must be valid UTF-8")?;
        if root_str.contains(['?', '#', '%']) {
            // These would be read as URL syntax by readers that parse file:// URLs.
            bail!("warehouse root must not contain '?', '#' or '%': {root_str}");
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating warehouse root {}", root.display()))?;
        Ok(Self { catalog_name: catalog_name.to_string(), root: root.to_path_buf(), file_io: FileIO::new_with_fs() })
    }

    /// `file:///abs/root`, the warehouse location readers are configured with.
    pub fn root_url(&self) -> String {
        format!("file://{}", self.root.display().to_string().trim_end_matches('/'))
    }

    /// Location (URL) of a table's folder.
    pub fn table_location(&self, namespace: &str, name: &str) -> String {
        format!("{}/{namespace}/{name}", self.root_url())
    }
}

/// A table as of one metadata file: what every write and commit builds on.
#[derive(Clone, Debug)]
pub struct LoadedTable {
    pub namespace: String,
    pub name: String,
    pub metadata_location: String,
    pub metadata: TableMetadata,
}

impl LoadedTable {
    /// The current schema as Arrow, with the Iceberg field ids that
    /// [`write_data_files`] requires on its batches.
    pub fn arrow_schema(&self) -> anyhow::Result<ArrowSchemaRef> {
        Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(self.metadata.current_schema())?))
    }

    /// Id of the current snapshot, `None` for a table without commits.
    pub fn current_snapshot_id(&self) -> Option<i64> {
        self.metadata.current_snapshot_id()
    }
}

/// Namespaces and table names become folder names: keep them to a safe
/// alphabet so a name can never step outside the warehouse root. Namespaces
/// may be nested with dots (`a.b`, as PyIceberg spells them).
pub(crate) fn check_name(kind: &str, value: &str, allow_dots: bool) -> anyhow::Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (allow_dots && c == '.');
    let segments_ok = value.split('.').all(|s| !s.is_empty());
    if value.is_empty() || value.len() > 255 || !value.chars().all(ok_char) || !segments_ok {
        bail!(
            "invalid {kind} {value:?}: use letters, digits, '_' and '-'{}",
            if allow_dots { " (and '.' between levels)" } else { "" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_warehouse() {
        assert!(check_name("table", "events_2024", false).is_ok());
        assert!(check_name("namespace", "sales.eu", true).is_ok());
        for bad in ["", "..", "a/b", "a.b", "../x", "a b", "é"] {
            assert!(check_name("table", bad, false).is_err(), "{bad:?} accepted");
        }
        for bad in ["", ".", "a..b", ".a", "a.", "a/b"] {
            assert!(check_name("namespace", bad, true).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn locations_are_file_urls_under_the_root() {
        let wh = Warehouse::local("dest", &std::env::temp_dir().join("icehouse-wh-unit")).unwrap();
        let loc = wh.table_location("ns", "t");
        assert!(loc.starts_with("file:///"), "{loc}");
        assert!(loc.ends_with("/icehouse-wh-unit/ns/t"), "{loc}");
        assert!(Warehouse::local("dest", Path::new("relative/root")).is_err());
    }
}
