#!/usr/bin/env bash
# The one command that builds and starts Icehouse locally, with its Postgres.
# Usage: scripts/dev.sh [extra args for "icehouse dev"]
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"

demo=${ICEHOUSE_DEMO:-1}
trap stop_background EXIT
step "system packages" ensure_system_packages
# Only the demo needs a broker, and Icehouse comes first: on a new machine
# tansu builds at a lower priority than Icehouse (and the UI's wasm-bindgen)
# and takes the cores once they are done.
if [[ $demo != 0 ]]; then in_background -n 15 tansu ensure_tansu; fi
in_background wasm-bindgen ensure_wasm_bindgen
step "Postgres" ensure_postgres
# The same package selection as scripts/test.sh, so both share one build;
# only the two binaries this script runs (test.sh builds the rest).
step "cargo build (release, icehouse and demo-producer)" \
    cargo build --release --workspace --bin icehouse --bin demo-producer "${ICEHOUSE_CARGO_TIMINGS[@]}"
await wasm-bindgen
step "web UI (wasm)" scripts/build-frontend.sh

export ICEHOUSE__DATABASE__URL="$DATABASE_URL"
if [[ -n ${ICEHOUSE_TENANT_DATABASE_URL:-} ]]; then
    export ICEHOUSE__DATABASE__TENANT_URL="$ICEHOUSE_TENANT_DATABASE_URL"
fi
if [[ $demo != 0 ]]; then
    # The wizard offers the demo broker (and icehouse dev a local warehouse).
    export ICEHOUSE__UI__DEFAULT_BOOTSTRAP_SERVERS="127.0.0.1:$ICEHOUSE_DEMO_BROKER_PORT"
fi
log "starting icehouse dev (it prints its URL)"
# Not exec: the EXIT trap must outlive icehouse to stop the demo. Ctrl-C and
# SIGTERM are passed on, and the script ends when icehouse has shut down.
"$CARGO_TARGET_DIR/release/icehouse" dev "$@" &
icehouse_pid=$!
trap 'stop_background; stop_demo; kill -TERM "$icehouse_pid" 2>/dev/null || true' EXIT
stopping=0
trap 'stopping=1; kill -TERM "$icehouse_pid" 2>/dev/null || true' INT TERM

# --- DEMO BROKER / PRODUCER ------------------------------------------------------
# A local tansu broker with a topic of store sales that fills a few events a
# second, for trying the wizard. ICEHOUSE_DEMO=0 skips it. Stopped on exit.
# On a new machine tansu may still be building when Icehouse is up: the demo
# then joins as soon as it is ready, rather than holding Icehouse back.
if [[ $demo != 0 ]]; then
    if [[ -n ${_ICEHOUSE_BG_PIDS[tansu]:-} ]] && ! _tansu_installed; then
        log "demo: the broker starts once tansu is built (first run only; log $ICEHOUSE_CACHE_DIR/logs/tansu.log)"
    fi
    await tansu
    # Stopped meanwhile (Ctrl-C, SIGTERM): no demo to start.
    if ((stopping)); then exit 130; fi
    step "demo broker" start_demo_broker
    step "demo producer" start_demo_producer
    log "demo: the wizard offers bootstrap server $ICEHOUSE_DEMO_BROKER; pick topic $ICEHOUSE_DEMO_TOPIC"
fi
# ---------------------------------------------------------------------------------

rc=0
while :; do
    wait "$icehouse_pid" && rc=0 || rc=$?
    kill -0 "$icehouse_pid" 2>/dev/null || break # wait was only interrupted by a signal
done
exit "$rc"
