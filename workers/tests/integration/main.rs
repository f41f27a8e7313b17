//! The data plane's integration tests in one test binary (one link instead
//! of one per file): the Iceberg commit path, the slice protocol and the
//! schema suggestion.

mod iceberg_roundtrip;
mod slices;
mod suggest;
