//! The end-to-end tests, one module per area, in one test binary: each
//! integration-test file would be a binary of its own, linked against the
//! whole stack, and linking them dominated the test build.

mod browser;
mod common;
mod crash;
mod egress;
mod hostile;
mod ingest;
mod process;
mod query;
mod s3;
mod schemathesis;
mod slices;
