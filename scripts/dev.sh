#!/usr/bin/env bash
# The one command that builds and starts Icehouse locally, with its Postgres.
# Usage: scripts/dev.sh [extra args for "icehouse dev"]
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"

step "system packages" ensure_system_packages
step "Postgres" ensure_postgres
step "tansu" ensure_tansu
# The same selection as scripts/test.sh, so both share one build.
step "cargo build (release, all binaries)" cargo build --release --workspace --bins
step "web UI (wasm)" scripts/build-frontend.sh

# --- DEMO BROKER / PRODUCER: not yet -------------------------------------------
# Later: start tansu on 127.0.0.1 plus a demo producer here, stop them on exit,
# and export the broker address for icehouse.
# ---------------------------------------------------------------------------------

export ICEHOUSE__DATABASE__URL="$DATABASE_URL"
log "starting icehouse dev (it prints its URL)"
exec "$CARGO_TARGET_DIR/release/icehouse" dev "$@"
