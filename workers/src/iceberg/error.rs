//! The one error of the Iceberg layer: what went wrong in words a user can
//! act on, and a [`LakeErrorKind`] a caller can branch on, so that a lost race
//! (rebuild on fresh metadata and go again) is never mistaken for a broken
//! bucket (tell a human) or a bad request (refuse it).
//!
//! The mapping from upstream errors is deliberate, not by their names:
//! - iceberg-rust's kinds say what failed inside the library, not whether the
//!   storage under it did: its object-store errors are `Unexpected` with the
//!   opendal error as source, and its local file system reports a failed
//!   read as `DataInvalid` with the OS error flattened into the message. So
//!   the opendal error is looked for in the source chain first, and a failed
//!   read is told apart from unparsable content by asking the store whether
//!   the file exists.
//! - sqlx errors are the catalog database failing: the connection, the pool
//!   and timeouts are transient; a serialization failure, a deadlock or a
//!   unique violation is a concurrent writer, so a conflict.
//!
//! The message never carries an upstream error's own text where that can be
//! a response body (an S3 error message is the XML, or whatever HTML a proxy
//! answered): it is shown to users as the pipeline's last error. The upstream
//! error is kept for logs ([`LakeError::upstream`], `Debug`) but is not the
//! `std::error::Error::source`, because `anyhow`'s `{:#}` prints every source.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure, which decides what a caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LakeErrorKind {
    /// Another writer moved first: the table's pointer moved since the
    /// metadata this commit was built on, a concurrent creator or
    /// transaction won, or files to remove were removed by another commit.
    /// Retryable on fresh metadata.
    Conflict,
    /// No such table, or a metadata, manifest or data file it points at is
    /// missing. Not retryable: nothing will make it reappear.
    NotFound,
    /// The object store, the local file system or the catalog database
    /// failed: unreachable, denied, timed out, I/O. Retryable when the
    /// failure is transient ([`LakeError::is_retryable`]).
    Storage,
    /// A bad name, schema, partition spec or request, or metadata we cannot
    /// parse or that is not ours to build on. Not retryable.
    Invalid,
    /// A table's metadata file that is not read: larger than
    /// [`super::MAX_METADATA_BYTES`], compressed, or naming a file outside
    /// the table's location; or any file outside the warehouse (or, for a
    /// scan, the table), or too large to read whole (see `confined`).
    /// What is in a tenant's bucket is the tenant's to write, so it is
    /// checked before anything follows it. Not retryable.
    InvalidMetadata,
}

impl LakeErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LakeErrorKind::Conflict => "conflict",
            LakeErrorKind::NotFound => "not-found",
            LakeErrorKind::Storage => "storage",
            LakeErrorKind::Invalid => "invalid",
            LakeErrorKind::InvalidMetadata => "invalid_metadata",
        }
    }
}

impl fmt::Display for LakeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the Iceberg layer. Its `Display` is the short human message,
/// with the table or file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LakeError {
    kind: LakeErrorKind,
    retryable: bool,
    /// Whether the catalog database (not the warehouse's files) failed.
    catalog: bool,
    message: String,
    upstream: Option<Box<dyn StdError + Send + Sync>>,
}

pub type LakeResult<T> = Result<T, LakeError>;

impl LakeError {
    fn new(kind: LakeErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self { kind, retryable, catalog: false, message: message.into(), upstream: None }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(LakeErrorKind::Conflict, true, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(LakeErrorKind::NotFound, false, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(LakeErrorKind::Invalid, false, message)
    }

    pub fn invalid_metadata(message: impl Into<String>) -> Self {
        Self::new(LakeErrorKind::InvalidMetadata, false, message)
    }

    pub fn kind(&self) -> LakeErrorKind {
        self.kind
    }

    /// Whether the same operation may succeed if tried again: on fresh
    /// metadata for a conflict, after a pause for a transient storage failure.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// A storage failure of the catalog database rather than of the
    /// warehouse's object store or folder: for a caller that reports
    /// "the warehouse could not be reached" only when that is what happened.
    pub fn is_catalog_database(&self) -> bool {
        self.catalog
    }

    /// The message alone, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The upstream error in full, for logs only: it may hold a raw response body.
    pub fn upstream(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.upstream.as_deref()
    }

    /// Prefixes the message with what was being done (`"{context}: {message}"`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    fn with_upstream(mut self, upstream: impl StdError + Send + Sync + 'static) -> Self {
        self.upstream = Some(Box::new(upstream));
        self
    }

    /// The warehouse confinement's refusal anywhere in `err`'s chain, as an
    /// `invalid_metadata` error: for failures that reach a caller through
    /// another library (a DataFusion scan wraps iceberg-rust's errors).
    pub fn refusal_in(err: &(dyn StdError + 'static)) -> Option<Self> {
        find_refused(err).map(|refused| Self::invalid_metadata(refused.to_string()))
    }

    /// A read of `path` failed with `err`: a missing file (not found), a
    /// store that fails (storage) and content that cannot be parsed (the
    /// library's own kind) look alike from iceberg-rust's local file system,
    /// so unless the object store already said which, the store is asked
    /// whether the file is there.
    pub(crate) async fn read_failed(file_io: &iceberg::io::FileIO, path: &str, err: iceberg::Error) -> Self {
        if find_opendal(&err).is_some() || find_refused(&err).is_some() {
            return Self::from(err);
        }
        match file_io.exists(path).await {
            Ok(false) => Self::not_found("no such file").with_upstream(err),
            Err(probe) => Self::from(probe),
            Ok(true) => Self::from(err),
        }
    }
}

/// `ensure!` for requests and metadata that are not valid.
macro_rules! ensure_valid {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::iceberg::LakeError::invalid(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure_valid;

/// `anyhow::Context` for results whose error becomes a [`LakeError`].
pub(crate) trait ResultExt<T> {
    fn context(self, context: impl fmt::Display) -> LakeResult<T>;
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> LakeResult<T>;
}

impl<T, E: Into<LakeError>> ResultExt<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> LakeResult<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> LakeResult<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

impl From<iceberg::Error> for LakeError {
    fn from(err: iceberg::Error) -> Self {
        use iceberg::ErrorKind as K;
        if let Some(refused) = find_refused(&err) {
            return Self::invalid_metadata(refused.to_string()).with_upstream(err);
        }
        if let Some(od) = find_opendal(&err) {
            let (kind, retryable) = opendal_kind(od);
            return Self::new(kind, retryable || err.retryable(), opendal_reason(od, &err)).with_upstream(err);
        }
        let kind = match err.kind() {
            K::CatalogCommitConflicts | K::TableAlreadyExists | K::NamespaceAlreadyExists => LakeErrorKind::Conflict,
            K::TableNotFound | K::NamespaceNotFound => LakeErrorKind::NotFound,
            K::DataInvalid | K::FeatureUnsupported | K::PreconditionFailed => LakeErrorKind::Invalid,
            // `Unexpected` is what iceberg-rust's own I/O raises (its local
            // file system puts the OS error in the message), and rarer
            // internal failures of an encoder: from where we call, a storage
            // failure. So are kinds newer than this mapping.
            _ => LakeErrorKind::Storage,
        };
        let io_transient = find_io(&err).is_some_and(|io| io_is_transient(io.kind()));
        let retryable = err.retryable() || kind == LakeErrorKind::Conflict || io_transient;
        // The library's message and its direct cause (a JSON, Avro or OS
        // error: short, and ours to show), without its kind and context dump.
        let reason = match StdError::source(&err) {
            Some(source) => format!("{}: {source}", err.message()),
            None => err.message().to_string(),
        };
        Self::new(kind, retryable, reason).with_upstream(err)
    }
}

impl From<sqlx::Error> for LakeError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let (kind, retryable) = match &err {
            E::Database(db) => database_kind(db.code().as_deref().unwrap_or("")),
            E::Io(io) => (LakeErrorKind::Storage, io_is_transient(io.kind())),
            E::PoolTimedOut | E::WorkerCrashed | E::Protocol(_) | E::BeginFailed => (LakeErrorKind::Storage, true),
            E::RowNotFound => (LakeErrorKind::NotFound, false),
            _ => (LakeErrorKind::Storage, false),
        };
        let reason = match &err {
            // Postgres's own message (and code): short, and no data of ours.
            E::Database(db) => match db.code() {
                Some(code) => format!("the catalog database refused: {} ({code})", db.message()),
                None => format!("the catalog database refused: {}", db.message()),
            },
            other => format!("the catalog database failed: {other}"),
        };
        let mut e = Self::new(kind, retryable, reason).with_upstream(err);
        e.catalog = kind == LakeErrorKind::Storage;
        e
    }
}

impl From<std::io::Error> for LakeError {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => LakeErrorKind::NotFound,
            _ => LakeErrorKind::Storage,
        };
        let retryable = io_is_transient(err.kind());
        Self::new(kind, retryable, err.to_string()).with_upstream(err)
    }
}

/// By SQLSTATE: <https://www.postgresql.org/docs/current/errcodes-appendix.html>.
fn database_kind(code: &str) -> (LakeErrorKind, bool) {
    match code {
        // serialization_failure, deadlock_detected, unique_violation: a
        // concurrent transaction won; the same work on fresh state can pass.
        "40001" | "40P01" | "23505" => (LakeErrorKind::Conflict, true),
        // query_canceled (statement timeout), admin/crash shutdown,
        // cannot_connect_now, read_only_sql_transaction (a fail-over),
        // lock_not_available.
        "57014" | "57P01" | "57P02" | "57P03" | "25006" | "55P03" => (LakeErrorKind::Storage, true),
        // connection_exception, insufficient_resources.
        c if c.starts_with("08") || c.starts_with("53") => (LakeErrorKind::Storage, true),
        // A missing catalog table, a denied privilege, a violated check: the
        // database is not as this code expects, which no retry changes.
        _ => (LakeErrorKind::Storage, false),
    }
}

fn io_is_transient(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(kind, K::TimedOut | K::Interrupted | K::WouldBlock | K::ConnectionRefused) || is_connection_loss(kind)
}

fn is_connection_loss(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(kind, K::ConnectionReset | K::ConnectionAborted | K::NotConnected | K::BrokenPipe | K::UnexpectedEof)
}

fn chain<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| e.source())
}

/// A path or file the warehouse's confinement refused, anywhere in the chain.
fn find_refused<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a super::confined::Refused> {
    chain(err).find_map(|e| e.downcast_ref())
}

fn find_opendal(err: &iceberg::Error) -> Option<&opendal::Error> {
    chain(err).find_map(|e| e.downcast_ref::<opendal::Error>())
}

fn find_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    chain(err).find_map(|e| e.downcast_ref::<std::io::Error>())
}

fn opendal_kind(err: &opendal::Error) -> (LakeErrorKind, bool) {
    use opendal::ErrorKind as K;
    // Persistent: temporary, and still failing after opendal's own retries;
    // worth another go later, unlike a permanent one.
    let transient = err.is_temporary() || err.is_persistent();
    match err.kind() {
        K::NotFound => (LakeErrorKind::NotFound, false),
        // A conditional write lost (If-Match / If-None-Match).
        K::ConditionNotMatch | K::AlreadyExists => (LakeErrorKind::Conflict, true),
        K::RateLimited => (LakeErrorKind::Storage, true),
        _ => (LakeErrorKind::Storage, transient),
    }
}

/// What the object store said, in our words: opendal's message is the
/// store's response body (S3's XML), so only its kind and, for a failed
/// connection, the OS error are shown.
fn opendal_reason(od: &opendal::Error, err: &iceberg::Error) -> String {
    use opendal::ErrorKind as K;
    let what = match od.kind() {
        K::NotFound => "no such object",
        K::PermissionDenied => "access denied by the object store",
        K::ConfigInvalid => "the object store refused the configuration (does the bucket exist?)",
        K::RateLimited => "rate limited by the object store",
        K::Unsupported => "the object store does not support this operation",
        K::ConditionNotMatch | K::AlreadyExists => "the object was changed by another writer",
        K::IsADirectory | K::NotADirectory => "the path is not a file",
        _ => "the object store failed",
    };
    match find_io(err) {
        Some(io) => format!("{what}: {}", io.kind()),
        None if od.is_persistent() => format!("{what} (still failing after retries)"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use iceberg::ErrorKind as K;

    use super::*;

    fn from_iceberg(kind: K, retryable: bool) -> LakeError {
        LakeError::from(iceberg::Error::new(kind, "something").with_retryable(retryable))
    }

    #[test]
    fn iceberg_kinds_map_to_what_a_caller_does_next() {
        let cases = [
            (K::CatalogCommitConflicts, LakeErrorKind::Conflict, true),
            (K::TableAlreadyExists, LakeErrorKind::Conflict, true),
            (K::NamespaceAlreadyExists, LakeErrorKind::Conflict, true),
            (K::TableNotFound, LakeErrorKind::NotFound, false),
            (K::NamespaceNotFound, LakeErrorKind::NotFound, false),
            (K::DataInvalid, LakeErrorKind::Invalid, false),
            (K::FeatureUnsupported, LakeErrorKind::Invalid, false),
            (K::PreconditionFailed, LakeErrorKind::Invalid, false),
            (K::Unexpected, LakeErrorKind::Storage, false),
        ];
        for (upstream, kind, retryable) in cases {
            let e = from_iceberg(upstream, false);
            assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{upstream:?}");
        }
        // The library's own retryable flag is kept.
        assert!(from_iceberg(K::Unexpected, true).is_retryable());
    }

    /// As iceberg-storage-opendal wraps every opendal error.
    fn from_opendal(od: opendal::Error) -> LakeError {
        LakeError::from(iceberg::Error::new(K::Unexpected, "Failure in doing io operation").with_source(od))
    }

    #[test]
    fn an_object_store_error_is_classified_by_its_own_kind_and_never_shows_the_body() {
        use opendal::{Error as Od, ErrorKind as O};
        let body = "<Error><Code>AccessDenied</Code><Message>secret-ish details</Message></Error>";
        let cases = [
            (Od::new(O::PermissionDenied, body), LakeErrorKind::Storage, false, "access denied by the object store"),
            (Od::new(O::NotFound, body), LakeErrorKind::NotFound, false, "no such object"),
            (
                Od::new(O::RateLimited, body).set_temporary(),
                LakeErrorKind::Storage,
                true,
                "rate limited by the object store",
            ),
            (
                Od::new(O::Unexpected, body).set_persistent(),
                LakeErrorKind::Storage,
                true,
                "the object store failed (still failing after retries)",
            ),
            (Od::new(O::Unexpected, body), LakeErrorKind::Storage, false, "the object store failed"),
            (
                Od::new(O::ConfigInvalid, body),
                LakeErrorKind::Storage,
                false,
                "the object store refused the configuration (does the bucket exist?)",
            ),
            (
                Od::new(O::ConditionNotMatch, body),
                LakeErrorKind::Conflict,
                true,
                "the object was changed by another writer",
            ),
        ];
        for (od, kind, retryable, message) in cases {
            let e = from_opendal(od);
            assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{e}");
            assert!(!e.is_catalog_database());
            assert!(e.upstream().is_some(), "the full error stays available for logs");
            // What a pipeline's last error shows: the whole anyhow chain.
            let shown = format!("{:#}", anyhow::Error::from(e.context("reading x")));
            assert_eq!(shown, format!("reading x: {message}"));
        }
    }

    #[test]
    fn a_failed_connection_to_the_object_store_names_the_os_error() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let od =
            opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request").set_source(io).set_persistent();
        let e = from_opendal(od);
        assert_eq!((e.kind(), e.is_retryable()), (LakeErrorKind::Storage, true));
        assert_eq!(e.to_string(), "the object store failed: connection refused");
    }

    #[test]
    fn an_opendal_error_is_found_under_a_parquet_error_too() {
        // The Parquet writer wraps its sink's error in ParquetError::External.
        let od = opendal::Error::new(opendal::ErrorKind::RateLimited, "slow down").set_temporary();
        let inner = iceberg::Error::new(K::Unexpected, "io").with_source(od);
        let parquet = parquet::errors::ParquetError::External(Box::new(inner));
        let e = LakeError::from(iceberg::Error::from(parquet));
        assert_eq!((e.kind(), e.is_retryable()), (LakeErrorKind::Storage, true));
        assert_eq!(e.to_string(), "rate limited by the object store");
    }

    #[test]
    fn sqlx_errors_are_the_catalog_database() {
        use std::io::{Error as IoError, ErrorKind as Io};
        let cases = [
            (sqlx::Error::PoolTimedOut, LakeErrorKind::Storage, true),
            (sqlx::Error::Io(IoError::from(Io::ConnectionRefused)), LakeErrorKind::Storage, true),
            (sqlx::Error::Io(IoError::from(Io::ConnectionReset)), LakeErrorKind::Storage, true),
            (sqlx::Error::Io(IoError::from(Io::PermissionDenied)), LakeErrorKind::Storage, false),
            (sqlx::Error::PoolClosed, LakeErrorKind::Storage, false),
            (sqlx::Error::RowNotFound, LakeErrorKind::NotFound, false),
            (sqlx::Error::ColumnNotFound("metadata_location".into()), LakeErrorKind::Storage, false),
        ];
        for (err, kind, retryable) in cases {
            let shown = err.to_string();
            let e = LakeError::from(err);
            assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{shown}");
            assert_eq!(e.is_catalog_database(), kind == LakeErrorKind::Storage, "{shown}");
        }
    }

    #[test]
    fn sqlstates_tell_a_concurrent_writer_from_a_struggling_or_broken_database() {
        assert_eq!(database_kind("40001"), (LakeErrorKind::Conflict, true));
        assert_eq!(database_kind("40P01"), (LakeErrorKind::Conflict, true));
        assert_eq!(database_kind("23505"), (LakeErrorKind::Conflict, true));
        assert_eq!(database_kind("57014"), (LakeErrorKind::Storage, true));
        assert_eq!(database_kind("08006"), (LakeErrorKind::Storage, true));
        assert_eq!(database_kind("53300"), (LakeErrorKind::Storage, true));
        assert_eq!(database_kind("42P01"), (LakeErrorKind::Storage, false));
        assert_eq!(database_kind("42501"), (LakeErrorKind::Storage, false));
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_kind() {
        let e: LakeResult<()> = Err(LakeError::conflict("another writer committed first"));
        let e = e.context("table sales.events").unwrap_err();
        assert_eq!(e.to_string(), "table sales.events: another writer committed first");
        assert_eq!((e.kind(), e.is_retryable()), (LakeErrorKind::Conflict, true));
        let io: Result<(), std::io::Error> = Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let e = io.with_context(|| "creating warehouse root /x").unwrap_err();
        assert_eq!((e.kind(), e.is_retryable()), (LakeErrorKind::Storage, true));
        assert!(e.to_string().starts_with("creating warehouse root /x: "), "{e}");
    }
}
