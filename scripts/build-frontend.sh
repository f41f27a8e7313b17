#!/usr/bin/env bash
# Builds the web UI (frontend/, Leptos) into frontend/dist, which the server
# serves at / (setting ui.dist_dir): index.html, style.css and pkg/ (the wasm
# module and its JavaScript glue from the wasm-bindgen CLI).
# Usage: scripts/build-frontend.sh [extra cargo build args, e.g. --locked]
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ICEHOUSE_ROOT"

WASM_TARGET=wasm32-unknown-unknown
CRATE=icehouse_frontend
DIST="$ICEHOUSE_ROOT/frontend/dist"

ensure_wasm_target() {
    command -v rustup >/dev/null 2>&1 || die "rustup not found (the wasm target is installed with rustup)"
    if rustup target list --installed | grep -qx "$WASM_TARGET"; then
        log "rust target $WASM_TARGET: installed"
    else
        rustup target add "$WASM_TARGET" || die "rustup target add $WASM_TARGET failed"
    fi
}

build_wasm() {
    cargo build --release --target "$WASM_TARGET" -p icehouse-frontend "$@"
}

# Binds the module and assembles the dist dir next to the old one, then swaps
# them, so a running server never serves half an update.
assemble_dist() {
    local wasm=$CARGO_TARGET_DIR/$WASM_TARGET/release/$CRATE.wasm tmp=$DIST.tmp
    [[ -f $wasm ]] || die "$wasm was not built"
    rm -rf "$tmp"
    mkdir -p "$tmp/pkg"
    "$ICEHOUSE_TOOLS_DIR/bin/wasm-bindgen" --target web --no-typescript --remove-name-section \
        --remove-producers-section --out-dir "$tmp/pkg" "$wasm"
    cp frontend/style.css "$tmp/style.css"
    # A content hash in the URLs: the server lets browsers keep versioned
    # files for good, and index.html (always revalidated) names the new ones.
    local hash
    hash=$(cat "$tmp/pkg/${CRATE}_bg.wasm" "$tmp/pkg/$CRATE.js" frontend/style.css frontend/boot.js | sha256sum | cut -c1-12)
    sed "s/@VERSION@/$hash/g" frontend/index.html >"$tmp/index.html"
    sed "s/@VERSION@/$hash/g" frontend/boot.js >"$tmp/boot.js"
    rm -rf "$DIST.old"
    if [[ -d $DIST ]]; then mv "$DIST" "$DIST.old"; fi
    mv "$tmp" "$DIST"
    rm -rf "$DIST.old"
}

report_size() {
    local wasm=$DIST/pkg/${CRATE}_bg.wasm js=$DIST/pkg/$CRATE.js
    log "wasm: $(stat -c %s "$wasm") bytes raw, $(gzip -9c "$wasm" | wc -c) bytes gzipped (JS glue: $(gzip -9c "$js" | wc -c) bytes gzipped)"
    log "web UI ready in $DIST"
}

step "rust target $WASM_TARGET" ensure_wasm_target
step "wasm-bindgen CLI" ensure_wasm_bindgen
step "cargo build (release, $WASM_TARGET, icehouse-frontend)" build_wasm "$@"
step "wasm-bindgen and dist" assemble_dist
report_size
