#!/usr/bin/env bash
# Ingestion throughput end to end (tansu → Icehouse → Iceberg) beside a bare
# consumer, the data plane beside arrow-json + parquet-rs, freshness at a
# steady 20k msg/s and peak RSS, all measured in one run
# (see e2e/src/bin/bench-ingest.rs). BENCH_MESSAGES and BENCH_FRESHNESS_SECS scale it.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"
step "Postgres" ensure_postgres
step "tansu" ensure_tansu
step "cargo build (release, all binaries)" cargo build --release --workspace --bins
exec "$CARGO_TARGET_DIR/release/bench-ingest"
