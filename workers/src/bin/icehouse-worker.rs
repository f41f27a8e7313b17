//! `icehouse-worker`: claims ingestion work from Postgres and runs it.
//!
//! Ingestion (leases, Kafka → Iceberg commits) is not built yet; until it is,
//! this binary says so and exits non-zero rather than pretending to work.

fn main() {
    eprintln!(
        "icehouse-worker: ingestion is not implemented yet in this version; \
         pipelines can be configured through the API but no worker runs them"
    );
    std::process::exit(2);
}
