//! Storage confined to one folder. What is in a tenant's bucket is the
//! tenant's to write, and the files of a table name other files (a manifest
//! list its manifests, a manifest its data and delete files): every file
//! I/O of a warehouse goes through [`Confined`], which refuses any path
//! outside its root (the warehouse's, or one table's for a scan). Every
//! read, whole (metadata, manifest lists, manifests) or by range (Parquet,
//! and manifests iceberg-rust reads through its encryption path), is at
//! most [`MAX_WHOLE_READ_BYTES`], takes its size from a budget all reads of
//! the process share before it is fetched, and fails after two minutes.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The most a file read whole, or one range of a file, may have. Metadata
/// grows with every snapshot until snapshot expiry trims it, manifest lists
/// with every manifest.
pub const MAX_WHOLE_READ_BYTES: u64 = 512 * 1024 * 1024;

/// The longest one read may take.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// MiB of reads in memory at once, over the process: twice the largest
/// read. A read takes its share before it is fetched and gives it back when
/// its bytes are returned (a whole metadata file, when it is parsed).
static READ_BUDGET: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2 * (MAX_WHOLE_READ_BYTES >> 20) as usize));

/// Why a path or a file was refused: found in an error's chain, it makes the
/// error `invalid_metadata` (see `LakeError`'s conversion).
#[derive(Debug)]
pub struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

fn refused(message: String) -> Error {
    Error::new(ErrorKind::DataInvalid, "refused by the warehouse's confinement").with_source(Refused(message))
}

/// Whether `path` lies under `root` (a URL without a trailing slash) in
/// plain segments: none empty, `.` or `..`, none with a control character
/// or with spaces around it (a file system or an object store would read
/// those as another path, or as the root itself).
pub fn is_under(path: &str, root: &str) -> bool {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && s.trim() == s && !s.chars().any(char::is_control);
    path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')).is_some_and(|rest| rest.split('/').all(plain))
}

tokio::task_local! {
    /// Set while [`read_whole`] reads: the ranged reads it makes through a
    /// confined reader are already within its share.
    static WITHIN_SHARE: ();
}

/// Reads the whole file, if it has at most [`MAX_WHOLE_READ_BYTES`]
/// (`Ok(Err(size))` if not), with its size held from the budget until the
/// permit is dropped. Only the bytes the store said the file has are read:
/// a store that answers a small size and then streams more gets a ranged
/// read.
pub async fn read_whole(input: &InputFile) -> iceberg::Result<Result<(Bytes, SemaphorePermit<'static>), u64>> {
    let size = input.metadata().await?.size;
    if size > MAX_WHOLE_READ_BYTES {
        return Ok(Err(size));
    }
    let reader = input.reader().await?;
    let (bytes, permit) = WITHIN_SHARE.scope((), read_range(reader.as_ref(), 0..size, true)).await?;
    Ok(Ok((bytes, permit.expect("taken from the budget"))))
}

/// Reads `range`, holding its share of the budget (when `budget`) while it
/// is fetched. The share is taken whole before the read: a read that held
/// part of its share while waiting for the rest could wait for ever on
/// others doing the same. A read that takes longer than [`READ_TIMEOUT`]
/// fails, so a store that reports a large file and sends it slowly holds
/// its share that long at most.
async fn read_range(
    reader: &dyn FileRead,
    range: Range<u64>,
    budget: bool,
) -> iceberg::Result<(Bytes, Option<SemaphorePermit<'static>>)> {
    let len = range.end.saturating_sub(range.start);
    let permit = match budget {
        true => Some(READ_BUDGET.acquire_many((len >> 20) as u32 + 1).await.expect("the budget is never closed")),
        false => None,
    };
    match tokio::time::timeout(READ_TIMEOUT, reader.read(range)).await {
        Ok(read) => Ok((read?, permit)),
        Err(_) => Err(Error::new(
            ErrorKind::Unexpected,
            format!("reading {len} bytes took longer than {} s", READ_TIMEOUT.as_secs()),
        )),
    }
}

/// A ranged reader that refuses ranges over [`MAX_WHOLE_READ_BYTES`] and
/// reads within the budget.
struct CappedReader {
    path: String,
    inner: Box<dyn FileRead>,
}

#[async_trait]
impl FileRead for CappedReader {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let len = range.end.saturating_sub(range.start);
        if len > MAX_WHOLE_READ_BYTES {
            return Err(refused(format!(
                "{}: a read of {len} bytes at once, more than the {} MiB a read may have",
                self.path,
                MAX_WHOLE_READ_BYTES >> 20
            )));
        }
        let budget = WITHIN_SHARE.try_with(|_| ()).is_err();
        read_range(self.inner.as_ref(), range, budget).await.map(|(bytes, _permit)| bytes)
    }
}

/// Builds [`Confined`] storage over what `inner` builds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfinedFactory {
    root: String,
    #[serde(with = "shared")]
    inner: Arc<dyn StorageFactory>,
}

impl ConfinedFactory {
    pub fn new(root: &str, inner: Arc<dyn StorageFactory>) -> Self {
        Self { root: root.trim_end_matches('/').to_string(), inner }
    }
}

#[typetag::serde(name = "icehouse-confined")]
impl StorageFactory for ConfinedFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(Confined { root: self.root.clone(), inner: self.inner.build(config)? }))
    }
}

/// A storage that passes to `inner` only paths under `root`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confined {
    root: String,
    #[serde(with = "shared")]
    inner: Arc<dyn Storage>,
}

impl Confined {
    fn check(&self, path: &str) -> iceberg::Result<()> {
        match is_under(path, &self.root) {
            true => Ok(()),
            false => Err(refused(format!("{path} is not inside {}", self.root))),
        }
    }
}

#[async_trait]
#[typetag::serde(name = "icehouse-confined")]
impl Storage for Confined {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        self.check(path)?;
        self.inner.exists(path).await
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        self.check(path)?;
        self.inner.metadata(path).await
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        self.check(path)?;
        match read_whole(&InputFile::new(self.inner.clone(), path.to_string())).await? {
            Ok((bytes, _permit)) => Ok(bytes),
            Err(size) => Err(refused(format!(
                "{path} has {size} bytes, more than the {} MiB a file read whole may have",
                MAX_WHOLE_READ_BYTES >> 20
            ))),
        }
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        self.check(path)?;
        Ok(Box::new(CappedReader { path: path.to_string(), inner: self.inner.reader(path).await? }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        self.check(path)?;
        self.inner.write(path, bs).await
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        self.check(path)?;
        self.inner.writer(path).await
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        self.check(path)?;
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        self.check(path)?;
        self.inner.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        // All are checked before any is deleted.
        let paths: Vec<String> = paths.collect().await;
        paths.iter().try_for_each(|p| self.check(p))?;
        self.inner.delete_stream(stream::iter(paths).boxed()).await
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.check(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        self.check(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Serde for the shared inner storage (typetag serialises `dyn Storage` and
/// `dyn StorageFactory`, and deserialises them boxed).
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: ?Sized + Serialize, S: Serializer>(value: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        (**value).serialize(s)
    }

    pub fn deserialize<'de, T: ?Sized, D: Deserializer<'de>>(d: D) -> Result<Arc<T>, D::Error>
    where
        Box<T>: Deserialize<'de>,
    {
        Box::<T>::deserialize(d).map(Arc::from)
    }
}

#[cfg(test)]
mod tests {
    use iceberg::io::{FileIOBuilder, LocalFsStorageFactory};

    use super::*;

    #[test]
    fn only_plain_paths_under_the_root_are_inside() {
        let root = "s3://b/wh/ns/t-1";
        assert!(is_under("s3://b/wh/ns/t-1/data/x.parquet", root));
        for outside in [
            "s3://b/wh/ns/t-1",
            "s3://b/wh/ns/t-1/",
            "s3://b/wh/ns/t-10/data/x.parquet",
            "s3://b/wh/ns/t-1/../t-2/data/x.parquet",
            "s3://b/wh/ns/t-1/./x",
            "s3://b/wh/ns/t-1//",
            "s3://b/wh/ns/t-1/ ",
            "s3://b/wh/ns/t-1/data/ x.parquet",
            "s3://b/wh/ns/t-1/data\n/x.parquet",
            "s3://other/wh/ns/t-1/data/x.parquet",
            "file:///etc/passwd",
        ] {
            assert!(!is_under(outside, root), "{outside}");
        }
    }

    #[tokio::test]
    async fn a_confined_file_io_refuses_what_lies_outside_and_what_is_too_big() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}/wh", dir.path().display());
        std::fs::create_dir_all(dir.path().join("wh")).unwrap();
        std::fs::write(dir.path().join("secret"), b"not yours").unwrap();
        std::fs::write(dir.path().join("wh/ok"), b"yours").unwrap();
        let io = FileIOBuilder::new(Arc::new(ConfinedFactory::new(&root, Arc::new(LocalFsStorageFactory)))).build();

        assert_eq!(io.new_input(format!("{root}/ok")).unwrap().read().await.unwrap(), Bytes::from_static(b"yours"));
        for outside in [format!("file://{}/secret", dir.path().display()), format!("{root}/../secret")] {
            let err = io.new_input(&outside).unwrap_err();
            let why = err.source().and_then(|s| s.downcast_ref::<Refused>()).expect("refused");
            assert!(why.to_string().starts_with(&format!("{outside} is not inside ")), "{why}");
            assert!(io.delete(&outside).await.is_err());
        }
        assert!(dir.path().join("secret").exists());

        // A sparse file one byte over the cap is refused without being read.
        let big = std::fs::File::create(dir.path().join("wh/big")).unwrap();
        big.set_len(MAX_WHOLE_READ_BYTES + 1).unwrap();
        let err = io.new_input(format!("{root}/big")).unwrap().read().await.unwrap_err();
        let why = err.source().and_then(|s| s.downcast_ref::<Refused>()).expect("refused");
        assert!(why.to_string().ends_with("more than the 512 MiB a file read whole may have"), "{why}");
        // So is one range of it that large, as a Parquet footer could ask.
        let reader = io.new_input(format!("{root}/big")).unwrap().reader().await.unwrap();
        let err = reader.read(0..MAX_WHOLE_READ_BYTES + 1).await.unwrap_err();
        let why = err.source().and_then(|s| s.downcast_ref::<Refused>()).expect("refused");
        assert!(why.to_string().ends_with("more than the 512 MiB a read may have"), "{why}");
        assert_eq!(reader.read(10..20).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn large_files_are_read_whole_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let content: Vec<u8> = (0..20 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f"), &content).unwrap();
        let io = FileIOBuilder::new(Arc::new(ConfinedFactory::new(&root, Arc::new(LocalFsStorageFactory)))).build();
        let input = io.new_input(format!("{root}/f")).unwrap();
        // Through the confined reader (whose own reads are within this share).
        let (bytes, permit) = read_whole(&input).await.unwrap().unwrap();
        assert!(bytes == content, "the file, whole");
        assert_eq!(permit.num_permits(), 21, "20 MiB and a bit: 21 MiB held while it is used");
        drop(permit);
        assert!(input.read().await.unwrap() == content);
        let part = input.reader().await.unwrap().read(5..9 * 1024 * 1024).await.unwrap();
        assert!(part[..] == content[5..9 * 1024 * 1024]);
    }
}
