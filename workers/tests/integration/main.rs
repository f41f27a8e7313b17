//! The data plane's integration tests in one test binary (one link instead
//! of one per file): the Iceberg commit path, the slice protocol, the task
//! queue and the schema suggestion.

mod iceberg_roundtrip;
mod slices;
mod suggest;
mod tasks;
