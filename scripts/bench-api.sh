#!/usr/bin/env bash
# p50/p99 latency of GET /api/v1/pipelines under 200 concurrent clients,
# beside GET /healthz measured in the same run (see e2e/src/bin/bench-api.rs).
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"
step "Postgres" ensure_postgres
step "cargo build (release, all binaries)" cargo build --release --workspace --bins
exec "$CARGO_TARGET_DIR/release/bench-api"
