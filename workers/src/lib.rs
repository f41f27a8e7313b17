//! The Icehouse data plane: every byte of Kafka, Parquet and Iceberg passes here.
//!
//! So far this holds the Kafka side of connection management (client settings
//! and the live connection probe used by the control plane). Ingestion,
//! the Iceberg catalog and commit protocol, stages and maintenance come with
//! the issues that build them.

pub mod kafka;
