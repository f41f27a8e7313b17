#!/usr/bin/env bash
# The one command that runs every check: formatting, a release build of all
# binaries, and the whole test suite against a real Postgres and tansu broker.
# Usage: scripts/test.sh [args passed to cargo test, e.g. -- --nocapture]
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"

# Total time on every exit, so CI logs show it on failure too.
on_exit() {
    local rc=$?
    stop_background
    if ((rc == 0)); then log "all checks passed in $(since_ms "$_ICEHOUSE_T0_MS")"; else log "FAILED (exit $rc) after $(since_ms "$_ICEHOUSE_T0_MS")"; fi
}
trap on_exit EXIT

step "system packages" ensure_system_packages
in_background tansu ensure_tansu
in_background wasm-bindgen ensure_wasm_bindgen
step "Postgres" ensure_postgres
step "Python readers" ensure_python_readers
step "Chromium" ensure_chromium
export ICEHOUSE_TEST_DATABASE_URL="$DATABASE_URL"

# --locked keeps CI honest about Cargo.lock, once there is one.
locked=()
if [[ -f Cargo.lock ]]; then locked=(--locked); fi

cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing (rustup component add rustfmt)"
step "cargo fmt --check" cargo fmt --all --check
step "cargo build (release, all binaries)" cargo build --release --workspace --bins "${locked[@]}" "${ICEHOUSE_CARGO_TIMINGS[@]}"
await wasm-bindgen
step "web UI (wasm)" scripts/build-frontend.sh "${locked[@]}"
# The test binaries build while tansu may still be building; they need it only to run.
step "cargo test --no-run (release)" cargo test --release --workspace --no-run "${locked[@]}" "${ICEHOUSE_CARGO_TIMINGS[@]}"
await tansu
step "cargo test (release)" cargo test --release --workspace "${locked[@]}" "$@"
