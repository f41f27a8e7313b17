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
//!    in the caller's transaction. A `Conflict` means another writer won:
//!    reload, re-prepare with the same data files, try again. After the caller's
//!    transaction commits, [`finish_commit`] deletes metadata files the table
//!    no longer lists (`write.metadata.delete-after-commit.enabled`).
//!
//! A commit whose outcome is unknown is checked with [`has_commit`] (by the
//! `icehouse.commit-id` summary key) before any retry.
//!
//! Every function here fails with a [`LakeError`], whose [`LakeErrorKind`]
//! says what to do next: `Conflict` (another writer moved the table first:
//! rebuild on fresh metadata, retryable), `NotFound` (no such table, or a
//! file it points at is gone), `Storage` (the object store, the folder or the
//! catalog database failed; retryable when transient) and `Invalid` (bad
//! names, schema, spec or metadata not ours to build on). Its message names
//! the table or file and is short enough to show a user as-is.
//!
//! The pieces used are iceberg-rust's public spec writers
//! (`ManifestWriterBuilder`, `ManifestListWriter`, `Snapshot::builder`,
//! `TableMetadataBuilder`), which is also what replace and delete commits
//! (compaction, retention) need and the library cannot do yet.

mod catalog;
mod commit;
mod confined;
mod error;
mod pipeline_tables;
mod schema_update;
mod write;

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use iceberg::io::{FileIO, FileIOBuilder, LocalFsStorageFactory, StorageFactory};
use iceberg::spec::TableMetadata;
use iceberg_storage_opendal::OpenDalStorageFactory;
use icehouse_api::destinations::WarehouseUri;
use uuid::Uuid;

pub use catalog::{
    create_table, drop_untouched, list_tables, load_at, load_table, partition_by, swap_pointer, table_pointer,
    table_pointers, MAX_METADATA_BYTES,
};
pub use commit::{
    discard_prepared, finish_commit, has_commit, live_files, prepare_append, prepare_commit, CommitRequest, LiveFile,
    PreparedCommit, COMMIT_ID_KEY,
};
pub use error::{LakeError, LakeErrorKind, LakeResult};
pub use pipeline_tables::{create_pipeline_tables, dead_letter_table_name};
pub use schema_update::add_columns;
pub use write::write_data_files;

use confined::ConfinedFactory;
use error::ResultExt;

/// Where a destination's tables live: a folder on local disk (`file://`) or
/// a prefix in an S3-compatible bucket (`s3://`). Tables are folders
/// `<root>/<namespace>/<table>-<uuid>` (see [`Warehouse::new_table_location`]),
/// addressed by the URLs external readers (PyIceberg, DuckDB, Spark) resolve
/// too.
#[derive(Clone)]
pub struct Warehouse {
    /// The JDBC-catalog `catalog_name`: the destination id.
    pub catalog_name: String,
    /// `file:///abs/root` or `s3://bucket/prefix`, without a trailing slash.
    root_url: String,
    /// Every file I/O of the warehouse, confined to `root_url` (see
    /// [`confined`]). Holds the S3 secret in its properties: never print it.
    pub file_io: FileIO,
    /// What `file_io` is confined over: local disk or S3.
    storage: Arc<dyn StorageFactory>,
}

// By hand: `FileIO`'s own Debug prints its properties, the S3 secret among them.
impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("catalog_name", &self.catalog_name)
            .field("root_url", &self.root_url)
            .finish_non_exhaustive()
    }
}

/// How to reach an S3-compatible object store. `endpoint` set means a store
/// other than AWS (MinIO, Ceph, R2, moto…), addressed path-style
/// (`http://host/bucket/key`), which every such store serves; without it, AWS
/// with virtual-hosted-style addressing. Keys come as a pair or not at all
/// (then the process's own AWS credential chain is used).
#[derive(Clone, Default)]
pub struct S3Access {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl S3Access {
    /// Checks where this access connects against the egress policy: a
    /// custom endpoint by what it resolves to (`resolve`: a blocking lookup)
    /// or, without one, only if it is an IP literal; AWS's own endpoints are
    /// public, but the region names the host, so it must be a region name.
    pub fn check_egress(
        &self,
        egress: &crate::egress::EgressPolicy,
        resolve: bool,
    ) -> Result<(), crate::egress::EgressError> {
        if let Some(region) = self.region.as_deref().filter(|r| !r.is_empty()) {
            if !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(crate::egress::EgressError::Invalid {
                    target: format!("the S3 region {region:?}"),
                    reason: "a region name has only lowercase letters, digits and dashes".into(),
                });
            }
        }
        match self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            Some(endpoint) if resolve => egress.check_url(endpoint),
            Some(endpoint) => egress.check_url_literal(endpoint),
            None => Ok(()),
        }
    }

    /// Region used when the destination names none (what AWS SDKs assume too).
    pub const DEFAULT_REGION: &'static str = "us-east-1";

    /// The `s3.*` FileIO properties (the names PyIceberg and Java use as well).
    fn file_io_props(&self) -> LakeResult<Vec<(&'static str, String)>> {
        use iceberg::io::{
            S3_ACCESS_KEY_ID, S3_DISABLE_CONFIG_LOAD, S3_DISABLE_EC2_METADATA, S3_ENDPOINT, S3_PATH_STYLE_ACCESS,
            S3_REGION, S3_SECRET_ACCESS_KEY,
        };
        let region = self.region.as_deref().filter(|r| !r.is_empty()).unwrap_or(Self::DEFAULT_REGION);
        let mut props = vec![(S3_REGION, region.to_string())];
        match self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            Some(endpoint) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(LakeError::invalid(format!(
                        "the S3 endpoint must be an http:// or https:// URL, got {endpoint:?}"
                    )));
                }
                props.push((S3_ENDPOINT, endpoint.trim_end_matches('/').to_string()));
                props.push((S3_PATH_STYLE_ACCESS, "true".to_string()));
            }
            None => props.push((S3_PATH_STYLE_ACCESS, "false".to_string())),
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(key_id), Some(secret)) => {
                props.push((S3_ACCESS_KEY_ID, key_id.clone()));
                props.push((S3_SECRET_ACCESS_KEY, secret.clone()));
                // The destination's own keys, and nothing of the host's
                // (environment, profile files, instance metadata) besides.
                props.push((S3_DISABLE_CONFIG_LOAD, "true".to_string()));
                props.push((S3_DISABLE_EC2_METADATA, "true".to_string()));
            }
            (None, None) => {}
            _ => return Err(LakeError::invalid("an S3 access key id and secret access key go together")),
        }
        Ok(props)
    }
}

impl Warehouse {
    /// A warehouse on local disk. The root must be absolute; it is created if missing.
    pub fn local(catalog_name: &str, root: &Path) -> LakeResult<Self> {
        check_catalog_name(catalog_name)?;
        if !root.is_absolute() {
            return Err(LakeError::invalid(format!("warehouse root must be an absolute path, got {}", root.display())));
        }
        let root_str = root.to_str().ok_or_else(|| LakeError::invalid("warehouse root must be valid UTF-8"))?;
        if root_str.contains(['?', '#', '%']) {
            // These would be read as URL syntax by readers that parse file:// URLs.
            return Err(LakeError::invalid(format!("warehouse root must not contain '?', '#' or '%': {root_str}")));
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating warehouse root {}", root.display()))?;
        let root_url = format!("file://{}", root_str.trim_end_matches('/'));
        Ok(Self::confined(catalog_name, root_url, Arc::new(LocalFsStorageFactory), Vec::new()))
    }

    /// A warehouse under `s3://bucket/prefix` (an empty prefix is the bucket's
    /// root). Nothing is contacted here: a wrong endpoint or key shows on the
    /// first read or write.
    pub fn s3(catalog_name: &str, bucket: &str, prefix: &str, access: &S3Access) -> LakeResult<Self> {
        check_catalog_name(catalog_name)?;
        let uri = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        // Same rules as the API applies to destinations: a valid bucket name,
        // no `.`/`..` segments, nothing that URL parsing would reinterpret.
        match WarehouseUri::parse(&uri).map_err(|e| LakeError::invalid(format!("invalid S3 warehouse {uri}: {e}")))? {
            WarehouseUri::S3 { .. } => {}
            WarehouseUri::File { .. } => unreachable!("built with s3://"),
        }
        if uri.contains(['?', '#', '%']) || (!prefix.is_empty() && prefix.split('/').any(str::is_empty)) {
            return Err(LakeError::invalid(format!(
                "invalid S3 warehouse {uri}: the prefix must be plain path segments"
            )));
        }
        let storage = Arc::new(OpenDalStorageFactory::S3 { customized_credential_load: None });
        Ok(Self::confined(catalog_name, uri, storage, access.file_io_props()?))
    }

    fn confined(
        catalog_name: &str,
        root_url: String,
        storage: Arc<dyn StorageFactory>,
        props: Vec<(&'static str, String)>,
    ) -> Self {
        let file_io =
            FileIOBuilder::new(Arc::new(ConfinedFactory::new(&root_url, storage.clone()))).with_props(props).build();
        Self { catalog_name: catalog_name.to_string(), root_url, file_io, storage }
    }

    /// A FileIO for reading one table (a scan): what its metadata names must
    /// lie under the table's `location`, itself inside the warehouse.
    pub fn file_io_within(&self, location: &str) -> LakeResult<FileIO> {
        let location = location.trim_end_matches('/');
        if !confined::is_under(location, &self.root_url) {
            return Err(LakeError::invalid_metadata(format!(
                "the table location {location} is not inside the warehouse {}",
                self.root_url
            )));
        }
        Ok(FileIOBuilder::new(Arc::new(ConfinedFactory::new(location, self.storage.clone())))
            .with_props(self.file_io.config().props())
            .build())
    }

    /// The warehouse a destination's `warehouse_uri` names: `file:///abs/path`
    /// or `s3://bucket/prefix` (then reached with `s3`).
    pub fn open(catalog_name: &str, warehouse_uri: &str, s3: &S3Access) -> LakeResult<Self> {
        match WarehouseUri::parse(warehouse_uri)
            .map_err(|e| LakeError::invalid(format!("invalid warehouse URI {warehouse_uri:?}: {e}")))?
        {
            WarehouseUri::File { path } => Self::local(catalog_name, Path::new(path)),
            WarehouseUri::S3 { bucket, prefix } => Self::s3(catalog_name, bucket, prefix, s3),
        }
    }

    /// `file:///abs/root` or `s3://bucket/prefix`, the warehouse location
    /// readers are configured with.
    pub fn root_url(&self) -> &str {
        &self.root_url
    }

    /// A fresh location (URL) for a table's folder:
    /// `<root>/<namespace>/<name>-<uuid v7>`. Unique on every call, so a table
    /// dropped and created again never shares (or overwrites) the files of the
    /// old one; readers take the location from the table's metadata.
    pub fn new_table_location(&self, namespace: &str, name: &str) -> String {
        format!("{}/{namespace}/{name}-{}", self.root_url, Uuid::now_v7().simple())
    }
}

fn check_catalog_name(catalog_name: &str) -> LakeResult<()> {
    if catalog_name.is_empty() {
        return Err(LakeError::invalid("catalog name must not be empty"));
    }
    Ok(())
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
    pub fn arrow_schema(&self) -> LakeResult<ArrowSchemaRef> {
        let schema = iceberg::arrow::schema_to_arrow_schema(self.metadata.current_schema())
            .with_context(|| format!("the schema of table {}", self.ident()))?;
        Ok(Arc::new(schema))
    }

    /// `namespace.name`, as messages name the table.
    pub fn ident(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Id of the current snapshot, `None` for a table without commits.
    pub fn current_snapshot_id(&self) -> Option<i64> {
        self.metadata.current_snapshot_id()
    }
}

/// Namespaces and table names become folder names: keep them to a safe
/// alphabet so a name can never step outside the warehouse root. Namespaces
/// may be nested with dots (`a.b`, as PyIceberg spells them).
pub(crate) fn check_name(kind: &str, value: &str, allow_dots: bool) -> LakeResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (allow_dots && c == '.');
    let segments_ok = value.split('.').all(|s| !s.is_empty());
    if value.is_empty() || value.len() > 255 || !value.chars().all(ok_char) || !segments_ok {
        return Err(LakeError::invalid(format!(
            "invalid {kind} {value:?}: use letters, digits, '_' and '-'{}",
            if allow_dots { " (and '.' between levels)" } else { "" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn names_cannot_escape_the_warehouse() {
        assert!(check_name("table", "events_2024", false).is_ok());
        assert!(check_name("namespace", "sales.eu", true).is_ok());
        for bad in ["", "..", "a/b", "a.b", "../x", "a b", "é"] {
            let err = check_name("table", bad, false).expect_err(bad);
            assert_eq!((err.kind(), err.is_retryable()), (LakeErrorKind::Invalid, false), "{bad:?}");
        }
        for bad in ["", ".", "a..b", ".a", "a.", "a/b"] {
            let err = check_name("namespace", bad, true).expect_err(bad);
            assert_eq!(err.kind(), LakeErrorKind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn a_warehouse_root_that_cannot_be_a_folder_is_a_storage_failure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a folder").unwrap();
        // Root does not stop a path under a regular file, unlike chmod.
        let err = Warehouse::local("dest", &file.join("warehouse")).unwrap_err();
        assert_eq!((err.kind(), err.is_retryable()), (LakeErrorKind::Storage, false), "{err}");
        assert!(err.to_string().starts_with(&format!("creating warehouse root {}", file.display())), "{err}");
        assert!(!err.is_catalog_database());

        let err = Warehouse::local("dest", Path::new("relative/root")).unwrap_err();
        assert_eq!(err.kind(), LakeErrorKind::Invalid, "{err}");
    }

    #[test]
    fn table_locations_are_unique_folders_under_the_root() {
        let wh = Warehouse::local("dest", &std::env::temp_dir().join("icehouse-wh-unit")).unwrap();
        let loc = wh.new_table_location("ns", "t");
        assert!(loc.starts_with("file:///"), "{loc}");
        let (parent, folder) = loc.rsplit_once('/').unwrap();
        assert!(parent.ends_with("/icehouse-wh-unit/ns"), "{loc}");
        let suffix = folder.strip_prefix("t-").unwrap_or_else(|| panic!("{loc}"));
        assert_eq!(Uuid::parse_str(suffix).unwrap().get_version_num(), 7, "{loc}");
        assert_ne!(wh.new_table_location("ns", "t"), loc, "a re-created table must get a new folder");
        assert!(Warehouse::local("dest", Path::new("relative/root")).is_err());

        let s3 = Warehouse::open("dest", "s3://bucket-1/lake/prod", &S3Access::default()).unwrap();
        assert_eq!(s3.root_url(), "s3://bucket-1/lake/prod");
        assert!(s3.new_table_location("ns", "t").starts_with("s3://bucket-1/lake/prod/ns/t-"));
        let bare = Warehouse::open("dest", "s3://bucket-1", &S3Access::default()).unwrap();
        assert!(bare.new_table_location("ns", "t").starts_with("s3://bucket-1/ns/t-"));
        for bad in ["s3://B", "s3://bucket-1/a/../b", "s3://bucket-1/a//b", "s3://bucket-1/a%20b", "ftp://x"] {
            let err = Warehouse::open("dest", bad, &S3Access::default()).expect_err(bad);
            assert_eq!(err.kind(), LakeErrorKind::Invalid, "{bad}: {err}");
        }
    }

    fn props(access: &S3Access) -> HashMap<&'static str, String> {
        access.file_io_props().unwrap().into_iter().collect()
    }

    #[test]
    fn s3_access_becomes_file_io_properties() {
        let custom = S3Access {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            region: None,
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("s3cr3t".into()),
        };
        let p = props(&custom);
        assert_eq!(p["s3.endpoint"], "http://127.0.0.1:9000");
        assert_eq!(p["s3.path-style-access"], "true");
        assert_eq!(p["s3.region"], "us-east-1");
        assert_eq!(p["s3.access-key-id"], "AKID");
        assert_eq!(p["s3.secret-access-key"], "s3cr3t");
        assert_eq!(p["s3.disable-config-load"], "true");

        let aws = S3Access { region: Some("eu-west-1".into()), ..Default::default() };
        let p = props(&aws);
        assert_eq!(p["s3.region"], "eu-west-1");
        assert_eq!(p["s3.path-style-access"], "false");
        assert!(!p.contains_key("s3.endpoint") && !p.contains_key("s3.access-key-id"));
        assert!(!p.contains_key("s3.disable-config-load"), "no keys: the host's credential chain applies");

        let half = S3Access { access_key_id: Some("AKID".into()), ..Default::default() };
        assert_eq!(half.file_io_props().unwrap_err().kind(), LakeErrorKind::Invalid);
        let bad_endpoint = S3Access { endpoint: Some("127.0.0.1:9000".into()), ..Default::default() };
        assert_eq!(bad_endpoint.file_io_props().unwrap_err().kind(), LakeErrorKind::Invalid);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let access = S3Access {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: None,
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("s3cr3t-value".into()),
        };
        let wh = Warehouse::open("dest", "s3://bucket-1/lake", &access).unwrap();
        for text in [format!("{access:?}"), format!("{wh:?}"), format!("{wh:#?}")] {
            assert!(!text.contains("s3cr3t-value"), "{text}");
        }
        assert!(format!("{wh:?}").contains("s3://bucket-1/lake"));
    }
}
