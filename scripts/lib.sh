# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it, don't run it:
#   source scripts/lib.sh; ensure_system_packages; ensure_postgres; ensure_tansu
set -euo pipefail

# --- paths and environment --------------------------------------------------

ICEHOUSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ICEHOUSE_ROOT
# Cron and some CI runners start without HOME.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export ICEHOUSE_CACHE_DIR="${ICEHOUSE_CACHE_DIR:-$HOME/.cache/icehouse}"
ICEHOUSE_TOOLS_DIR="$ICEHOUSE_CACHE_DIR/tools"
# The build cache lives outside the clone so a fresh clone rebuilds nothing.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ICEHOUSE_CACHE_DIR/target}"

_path_prepend() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) PATH="$1:$PATH" ;;
    esac
}
# ICEHOUSE_TIMINGS=1: the scripts' cargo builds also write cargo's --timings
# report (HTML, under $CARGO_TARGET_DIR/cargo-timings/); docs/build.md.
ICEHOUSE_CARGO_TIMINGS=()
if [[ -n ${ICEHOUSE_TIMINGS:-} && ${ICEHOUSE_TIMINGS} != 0 ]]; then ICEHOUSE_CARGO_TIMINGS=(--timings); fi
# Non-login shells often lack rustup's PATH entry.
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
    _path_prepend "$HOME/.cargo/bin"
fi
# Tools we build ourselves (tansu) win over anything else on PATH.
_path_prepend "$ICEHOUSE_TOOLS_DIR/bin"
export PATH

# --- logging ------------------------------------------------------------------

# Elapsed time is counted from when the script sourced this file, in ms
# (EPOCHREALTIME: SECONDS is too coarse for sub-second steps).
_now_ms() {
    local us=${EPOCHREALTIME//[!0-9]/}
    echo $((us / 1000))
}
_ICEHOUSE_T0_MS=${_ICEHOUSE_T0_MS:-$(_now_ms)}

# since_ms START_MS : "12.3s"
since_ms() {
    local ms=$(($(_now_ms) - $1))
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

# log MESSAGE... : "==> [ 12.3s] message" on stderr (stdout stays clean for callers).
log() {
    printf '==> [%6s] %s\n' "$(since_ms "$_ICEHOUSE_T0_MS")" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# step TITLE CMD... : run CMD, logging its start and how long it took.
# A failing CMD ends the script (set -e) before the "ok" line.
step() {
    local title=$1 t0
    t0=$(_now_ms)
    shift
    log "$title"
    "$@"
    log "$title: ok ($(since_ms "$t0"))"
}

# --- system packages ------------------------------------------------------------

ICEHOUSE_APT_PACKAGES=(
    build-essential pkg-config libssl-dev zlib1g-dev # native deps of the Rust crates
    ca-certificates                                  # crates.io over TLS
    python3 python3-venv                             # Python test helpers (e.g. a Kafka producer) use a venv
)

_pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# _apt_install PKG... : install with apt, as root or through passwordless sudo.
_apt_install() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            die "missing packages: $*. Not root and no sudo; as root run: apt-get install -y $*"
        sudo=(sudo -n) # -n: never wait for a password (no stdin in CI)
    fi
    # env: sudo drops DEBIAN_FRONTEND, and debconf must never prompt.
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    if [[ -z ${_ICEHOUSE_APT_UPDATED:-} ]]; then
        log "apt-get update"
        "${apt[@]}" -qq update </dev/null || die "apt-get update failed (need root or passwordless sudo)"
        _ICEHOUSE_APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${apt[@]}" -q -y --no-install-recommends install "$@" </dev/null ||
        die "apt-get install $* failed"
}

# Newest Postgres server bin dir (/usr/lib/postgresql/<ver>/bin), or fail.
_pg_bindir() {
    local initdb
    initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    [[ -x $initdb ]] && dirname "$initdb"
}

ensure_system_packages() {
    command -v dpkg-query >/dev/null 2>&1 || die "only Debian/Ubuntu (apt) is supported"
    local missing=() pkg
    for pkg in "${ICEHOUSE_APT_PACKAGES[@]}"; do
        _pkg_installed "$pkg" || missing+=("$pkg")
    done
    # Any server version will do; Debian's "postgresql" pulls the distro default.
    _pg_bindir >/dev/null || missing+=(postgresql)
    if ((${#missing[@]} == 0)); then
        log "system packages: all present"
        return 0
    fi
    _apt_install "${missing[@]}"
}

# --- Chromium (headless browser for the e2e browser tests) ----------------------------

ICEHOUSE_CHROMIUM=/usr/bin/chromium
ICEHOUSE_CHROMEDRIVER=/usr/bin/chromedriver

# ensure_chromium: Debian's chromium and its matching chromedriver (same
# version, one package source), installed only when either binary is missing.
ensure_chromium() {
    command -v dpkg-query >/dev/null 2>&1 || die "only Debian/Ubuntu (apt) is supported"
    if [[ -x $ICEHOUSE_CHROMIUM && -x $ICEHOUSE_CHROMEDRIVER ]]; then
        log "Chromium: already installed ($("$ICEHOUSE_CHROMIUM" --version 2>/dev/null </dev/null || echo "version unknown"))"
        return 0
    fi
    _apt_install chromium chromium-driver
    [[ -x $ICEHOUSE_CHROMIUM && -x $ICEHOUSE_CHROMEDRIVER ]] ||
        die "chromium installed but $ICEHOUSE_CHROMIUM or $ICEHOUSE_CHROMEDRIVER is missing"
    log "Chromium: installed"
}

# --- Postgres -----------------------------------------------------------------------

ICEHOUSE_DB_NAME=icehouse
ICEHOUSE_DB_USER=icehouse
ICEHOUSE_DB_PASSWORD=icehouse
# The login of requests made for a tenant (database.tenant_url): a member of
# icehouse_tenant, which row-level security never lets act as system code.
ICEHOUSE_DB_TENANT_USER=icehouse_api

_pg_client() { # path to a Postgres client tool, preferring PATH
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        local bindir
        bindir=$(_pg_bindir) && echo "$bindir/$1"
    fi
}

_pg_url_works() {
    local psql
    psql=$(_pg_client psql) || return 1
    PGCONNECT_TIMEOUT=5 "$psql" "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

# ensure_postgres: make a Postgres that answers and export DATABASE_URL.
# A working DATABASE_URL from the environment wins; otherwise run the project's
# private cluster, which ignores whatever the system Postgres (5432) is doing.
ensure_postgres() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        if _pg_url_works "$DATABASE_URL"; then
            log "Postgres: using DATABASE_URL from the environment"
            # Superusers and BYPASSRLS roles skip row-level security, so tests would pass wrongly.
            if [[ "$(PGCONNECT_TIMEOUT=5 "$(_pg_client psql)" "$DATABASE_URL" -XAtqc \
                'select rolsuper or rolbypassrls from pg_roles where rolname = current_user' 2>/dev/null)" == t ]]; then
                log "WARNING: DATABASE_URL's role is a superuser or BYPASSRLS; row-level security is not enforced"
            fi
            if [[ -z ${ICEHOUSE_TENANT_DATABASE_URL:-} ]]; then
                log "WARNING: ICEHOUSE_TENANT_DATABASE_URL is not set: tests need a login in role icehouse_tenant on that server"
            fi
            export DATABASE_URL
            return 0
        fi
        log "Postgres: DATABASE_URL is set but does not answer; using the private cluster instead"
    fi
    _ensure_private_postgres
}

_ensure_private_postgres() {
    local port=${ICEHOUSE_PG_PORT:-54329} bindir base data logfile lock_fd

    bindir=$(_pg_bindir) || {
        _apt_install postgresql
        bindir=$(_pg_bindir) || die "no /usr/lib/postgresql/*/bin/initdb even after installing postgresql"
    }

    if ((EUID == 0)); then
        # Root runs the server as "postgres" (it refuses to run as root), and
        # /root is mode 700, so the cluster can't live under $HOME.
        base=/var/lib/icehouse
        if ! id -u postgres >/dev/null 2>&1; then
            log "creating system user postgres"
            useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
                --shell /usr/sbin/nologin postgres
        fi
        # 0700: only the server user (and root) may reach the trust-auth socket.
        install -d -m 0700 -o postgres -g postgres "$base"
    else
        base=$ICEHOUSE_CACHE_DIR
        mkdir -p "$base"
    fi
    data=$base/pg
    logfile=$base/pg.log

    # Serialise concurrent runs (e.g. test.sh and dev.sh started together).
    # Every command that may start the server closes this fd ({lock_fd}>&-):
    # a postmaster inheriting it would hold the lock forever.
    exec {lock_fd}>>"$base/.ensure-postgres.lock"
    flock -w 300 "$lock_fd" || die "timed out waiting for another ensure_postgres (lock $base/.ensure-postgres.lock)"

    [[ -f $data/PG_VERSION ]] || _pg_initdb

    local conf_changed=0
    _pg_write_conf && conf_changed=1

    if _pg_ready; then
        if ((conf_changed)); then
            log "Postgres: settings changed, restarting the private cluster"
            _pg_run "$bindir/pg_ctl" -D "$data" -l "$logfile" -m fast -w -t 60 restart >/dev/null {lock_fd}>&- ||
                _pg_fail "restart failed"
        fi
    else
        _pg_start
    fi

    _pg_create_role_and_db
    exec {lock_fd}>&-

    export DATABASE_URL="postgres://$ICEHOUSE_DB_USER:$ICEHOUSE_DB_PASSWORD@127.0.0.1:$port/$ICEHOUSE_DB_NAME"
    export ICEHOUSE_TENANT_DATABASE_URL="postgres://$ICEHOUSE_DB_TENANT_USER:$ICEHOUSE_DB_PASSWORD@127.0.0.1:$port/$ICEHOUSE_DB_NAME"
    # For the test that starts a server on a superuser, which must refuse.
    export ICEHOUSE_PG_SUPERUSER_URL="postgres://postgres@localhost/$ICEHOUSE_DB_NAME?host=$base&port=$port"
    _pg_url_works "$DATABASE_URL" || die "private Postgres is up but $DATABASE_URL does not connect (see $logfile)"
    log "Postgres: ready at 127.0.0.1:$port (data $data)"
}

# The helpers below use _ensure_private_postgres's locals (bash dynamic scoping).

# Run a server-side command as the server's OS user (cd /: postgres can't read /root).
_pg_run() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

_pg_ready() {
    # -U/-d: a nonexistent default user would log a FATAL line per probe.
    "$bindir/pg_isready" -q -t 2 -h "$base" -p "$port" -U postgres -d postgres
}

_pg_fail() {
    [[ -f $logfile ]] && tail -n 20 "$logfile" >&2
    die "Postgres: $* (data $data, log $logfile)"
}

_pg_initdb() {
    if [[ -d $data ]]; then
        # Never delete something we did not create.
        [[ -z "$(ls -A "$data")" ]] ||
            die "$data exists but has no PG_VERSION; it is not a cluster we made. Move it away and rerun."
        rmdir "$data"
    fi
    # initdb into a scratch dir and rename it at the end, so an interrupted
    # initdb never leaves a half-made cluster that looks real.
    local tmp=$data.initdb out
    rm -rf "$tmp"
    log "Postgres: initdb $data"
    out=$(_pg_run "$bindir/initdb" -D "$tmp" --username=postgres \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C 2>&1) ||
        { printf '%s\n' "$out" >&2; die "initdb failed"; }
    # Our settings live in icehouse.conf, rewritten on every run (see _pg_write_conf).
    printf "\ninclude_if_exists = 'icehouse.conf'\n" >>"$tmp/postgresql.conf"
    mv "$tmp" "$data"
}

# Write icehouse.conf; succeed only if it changed.
_pg_write_conf() {
    local conf=$data/icehouse.conf want
    want="# Written by scripts/lib.sh (ensure_postgres) on every run; edits are lost.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${base//\'/\'\'}'
unix_socket_permissions = 0700
# Tests commit a lot; losing the last few ms of commits on a crash is fine here.
synchronous_commit = off"
    if [[ -f $conf && "$(<"$conf")" == "$want" ]]; then
        return 1
    fi
    printf '%s\n' "$want" >"$conf"
    if ((EUID == 0)); then chown postgres:postgres "$conf"; fi
    return 0
}

# Is PID a live postmaster of our data dir? (A postmaster's cwd is its data
# dir; this also catches a PID reused by an unrelated process after a crash.)
_pg_is_ours() {
    [[ $1 =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$1/cwd" 2>/dev/null)" == "$(readlink -f "$data")" ]]
}

_pg_start() {
    local pidfile=$data/postmaster.pid pid pid_port
    if [[ -f $pidfile ]]; then
        pid=$(sed -n 1p "$pidfile")
        pid_port=$(sed -n 4p "$pidfile")
        if _pg_is_ours "$pid"; then
            if [[ $pid_port == "$port" ]]; then
                # Alive but not answering yet: starting up or recovering.
                log "Postgres: waiting for the running postmaster (PID $pid)"
                local i
                for i in {1..60}; do
                    _pg_ready && return 0
                    sleep 1
                done
                _pg_fail "postmaster PID $pid runs but does not answer on port $port"
            fi
            log "Postgres: running on old port $pid_port, restarting on $port"
            _pg_run "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || _pg_fail "stop failed"
        else
            # The postmaster died (crash, kill -9, reboot). Its children exit on
            # their own once they notice; starting before that would be unsafe.
            _pg_wait_for_orphans
            log "Postgres: removing stale postmaster.pid (PID $pid is not a live postmaster)"
            rm -f "$pidfile" "$base"/.s.PGSQL.*.lock
        fi
    fi
    log "Postgres: starting private cluster on 127.0.0.1:$port (log $logfile)"
    _pg_run "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null {lock_fd}>&- ||
        _pg_fail "start failed"
}

_pg_wait_for_orphans() {
    local real busy p i
    real=$(readlink -f "$data")
    for i in {1..40}; do
        busy=""
        for p in /proc/[0-9]*; do
            if [[ "$(readlink "$p/cwd" 2>/dev/null)" == "$real" ]]; then busy+=" ${p#/proc/}"; fi
        done
        [[ -z $busy ]] && return 0
        if ((i == 1)); then log "Postgres: waiting for leftover server processes to exit (PIDs$busy)"; fi
        sleep 0.25
    done
    die "Postgres: processes still use $data after their postmaster died (PIDs$busy); stop them and rerun"
}

# Idempotent. The app relies on row-level security, which superusers (and
# BYPASSRLS roles) skip, so the app role must be neither; tests create a
# database per test, hence CREATEDB. The tenant login is a member of the
# group role icehouse_tenant, which the migrations grant to.
_pg_create_role_and_db() {
    "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$base" -p "$port" -U postgres -d postgres \
        -v user="$ICEHOUSE_DB_USER" -v password="$ICEHOUSE_DB_PASSWORD" -v db="$ICEHOUSE_DB_NAME" \
        -v tenant_user="$ICEHOUSE_DB_TENANT_USER" \
        >/dev/null <<'SQL' || _pg_fail "could not create role/database"
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN PASSWORD :'password' NOSUPERUSER CREATEDB NOCREATEROLE NOBYPASSRLS;
SELECT 'CREATE ROLE icehouse_tenant NOLOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'icehouse_tenant') \gexec
SELECT format('CREATE ROLE %I', :'tenant_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'tenant_user') \gexec
ALTER ROLE :"tenant_user" WITH LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
GRANT icehouse_tenant TO :"tenant_user";
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"user";
SQL
}

# --- tansu (Kafka-protocol broker used by the tests) ---------------------------------

ICEHOUSE_TANSU_VERSION=0.6.0
ICEHOUSE_TANSU_FEATURES=dynostore,libsql # a storage engine is needed even for memory://

# "tansu --version" prints "tansu 0.6.0". timeout: never let a surprise binary
# start a broker here.
_tansu_installed() {
    local bin=$ICEHOUSE_TOOLS_DIR/bin/tansu out
    [[ -x $bin ]] || return 1
    out=$(timeout 10 "$bin" --version 2>/dev/null </dev/null) || return 1
    [[ " $out " == *" $ICEHOUSE_TANSU_VERSION "* ]]
}

ensure_tansu() {
    if _tansu_installed; then
        log "tansu $ICEHOUSE_TANSU_VERSION: already installed"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
    mkdir -p "$ICEHOUSE_TOOLS_DIR"
    local lock_fd
    exec {lock_fd}>>"$ICEHOUSE_TOOLS_DIR/.tansu-install.lock"
    flock "$lock_fd"
    # Another run may have finished the install while we waited for the lock.
    if ! _tansu_installed; then
        log "tansu $ICEHOUSE_TANSU_VERSION: building from crates.io (about 16 minutes alone on 2 cores, once per machine)"
        # Own target dir: an interrupted build resumes, and it never contends
        # with the workspace's target dir. cd: no workspace config/toolchain.
        (cd "$ICEHOUSE_TOOLS_DIR" &&
            CARGO_TARGET_DIR="$ICEHOUSE_TOOLS_DIR/build" cargo install tansu \
                --version "$ICEHOUSE_TANSU_VERSION" --locked \
                --features "$ICEHOUSE_TANSU_FEATURES" --root "$ICEHOUSE_TOOLS_DIR") ||
            die "cargo install tansu failed"
        rm -rf "$ICEHOUSE_TOOLS_DIR/build"
        _tansu_installed || die "tansu installed but does not report version $ICEHOUSE_TANSU_VERSION"
    fi
    exec {lock_fd}>&-
    log "tansu $ICEHOUSE_TANSU_VERSION: installed"
}

# --- wasm-bindgen CLI (binds the web UI's wasm module; scripts/build-frontend.sh) -------

# The CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock:
# the generated glue and the module's custom section must agree.
_wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ICEHOUSE_ROOT/Cargo.lock"
}

_wasm_bindgen_installed() {
    local bin=$ICEHOUSE_TOOLS_DIR/bin/wasm-bindgen out
    [[ -x $bin ]] || return 1
    out=$("$bin" --version 2>/dev/null) || return 1
    [[ " $out " == *" $1 "* ]]
}

ensure_wasm_bindgen() {
    local version lock_fd
    version=$(_wasm_bindgen_version)
    [[ -n $version ]] || die "no wasm-bindgen in Cargo.lock"
    if _wasm_bindgen_installed "$version"; then
        log "wasm-bindgen $version: already installed"
        return 0
    fi
    mkdir -p "$ICEHOUSE_TOOLS_DIR"
    exec {lock_fd}>>"$ICEHOUSE_TOOLS_DIR/.wasm-bindgen-install.lock"
    flock "$lock_fd"
    if ! _wasm_bindgen_installed "$version"; then
        log "wasm-bindgen $version: building the CLI from crates.io (about 5 CPU-minutes, once per version)"
        # No --locked: a dependency pinned in the CLI's own lock file is no
        # longer on the registry. Own target dir, as for tansu (scripts/lib.sh).
        (cd "$ICEHOUSE_TOOLS_DIR" &&
            CARGO_TARGET_DIR="$ICEHOUSE_TOOLS_DIR/build-wasm-bindgen" cargo install wasm-bindgen-cli \
                --version "$version" --root "$ICEHOUSE_TOOLS_DIR") ||
            die "cargo install wasm-bindgen-cli --version $version failed"
        rm -rf "$ICEHOUSE_TOOLS_DIR/build-wasm-bindgen"
        _wasm_bindgen_installed "$version" || die "wasm-bindgen installed but does not report version $version"
    fi
    exec {lock_fd}>&-
    log "wasm-bindgen $version: installed"
}

# --- tools built from crates.io in the background ------------------------------------

# Tansu and the wasm-bindgen CLI do not depend on the workspace build, so on a
# new machine they are built beside it at a lower CPU priority: they take the
# cores the workspace build leaves idle (its long single-crate stretches and
# links) instead of adding their own ~20 minutes after it.

declare -A _ICEHOUSE_BG_PIDS=()

# in_background [-n NICE] NAME CMD... : run CMD (a function is fine) in the
# background at nice NICE (default 10), with its output in
# $ICEHOUSE_CACHE_DIR/logs/NAME.log; await NAME collects it. The scripts' exit
# traps call stop_background.
in_background() {
    local niceness=10 name logf
    if [[ $1 == -n ]]; then
        niceness=$2
        shift 2
    fi
    name=$1
    shift
    logf=$ICEHOUSE_CACHE_DIR/logs/$name.log
    mkdir -p "${logf%/*}"
    (
        renice -n "$niceness" -p "$BASHPID" >/dev/null 2>&1 || true
        "$@"
    ) </dev/null >"$logf" 2>&1 &
    _ICEHOUSE_BG_PIDS[$name]=$!
    log "$name: started in the background (log $logf)"
}

# await NAME : wait for a step started by in_background; fail with its log.
await() {
    local name=$1 pid t0
    pid=${_ICEHOUSE_BG_PIDS[$name]:-}
    [[ -n $pid ]] || return 0
    t0=$(_now_ms)
    local rc=0
    wait "$pid" || rc=$?
    if ((rc > 128)) && kill -0 "$pid" 2>/dev/null; then
        die "interrupted while waiting for $name"
    fi
    if ((rc != 0)); then
        unset "_ICEHOUSE_BG_PIDS[$name]"
        tail -n 30 "$ICEHOUSE_CACHE_DIR/logs/$name.log" >&2
        die "$name failed in the background (log $ICEHOUSE_CACHE_DIR/logs/$name.log)"
    fi
    unset "_ICEHOUSE_BG_PIDS[$name]"
    log "$name: ready (waited $(since_ms "$t0") for it)"
}

_kill_tree() { # PID: SIGTERM the process and its descendants, children first
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do _kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
}

# stop_background: end what in_background started and is still running, so
# a failed run leaves no compiler behind. An interrupted cargo install
# resumes next time: each tool has its own build directory.
stop_background() {
    local name pid
    for name in "${!_ICEHOUSE_BG_PIDS[@]}"; do
        pid=${_ICEHOUSE_BG_PIDS[$name]}
        # Only a job of ours that still runs (a finished one's PID may be reused).
        if jobs -pr | grep -qx "$pid"; then _kill_tree "$pid"; fi
    done
    _ICEHOUSE_BG_PIDS=()
}

# --- the demo: a local broker with a topic of store sales (scripts/dev.sh) ---------

ICEHOUSE_DEMO_BROKER_PORT=${ICEHOUSE_DEMO_BROKER_PORT:-19092}
ICEHOUSE_DEMO_TOPIC=demo.store_sales
ICEHOUSE_DEMO_RATE=${ICEHOUSE_DEMO_RATE:-4} # events per second
ICEHOUSE_DEMO_SEED=${ICEHOUSE_DEMO_SEED:-42}
_ICEHOUSE_DEMO_PIDS=() # what start_demo_* started, stopped by stop_demo

_port_open() { # PORT: does something accept connections on 127.0.0.1:PORT?
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_listener_pid() { # PORT: PID of the process listening on it, if ss can tell
    command -v ss >/dev/null 2>&1 || return 1
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

# start_demo_broker: a tansu broker on 127.0.0.1:$ICEHOUSE_DEMO_BROKER_PORT with
# SQLite storage under $ICEHOUSE_CACHE_DIR/demo (kept across runs, like the
# pipelines in Postgres that read it). A tansu already listening there (another
# dev.sh) is reused and left running; any other program on the port is an error.
# Exports ICEHOUSE_DEMO_BROKER (host:port).
start_demo_broker() {
    local port=$ICEHOUSE_DEMO_BROKER_PORT dir=$ICEHOUSE_CACHE_DIR/demo pid exe i
    export ICEHOUSE_DEMO_BROKER=127.0.0.1:$port
    if _port_open "$port"; then
        pid=$(_listener_pid "$port") || true
        exe=$(readlink "/proc/${pid:-0}/exe" 2>/dev/null) || true
        [[ ${exe##*/} == tansu ]] ||
            die "port $port is taken by ${exe:-another program}${pid:+ (PID $pid)}, not a tansu broker; set ICEHOUSE_DEMO_BROKER_PORT to a free port"
        log "demo broker: reusing the tansu already on $ICEHOUSE_DEMO_BROKER (PID $pid)"
        return 0
    fi
    mkdir -p "$dir"
    # cd: tansu resolves the SQLite path against its working directory.
    (cd "$dir" && exec tansu broker --listener-url "tcp://$ICEHOUSE_DEMO_BROKER" \
        --advertised-listener-url "tcp://$ICEHOUSE_DEMO_BROKER" --storage-engine sqlite://tansu.db) \
        </dev/null >"$dir/tansu.log" 2>&1 &
    pid=$!
    _ICEHOUSE_DEMO_PIDS+=("$pid")
    for i in {1..200}; do
        _port_open "$port" && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$dir/tansu.log" >&2
            die "demo broker: tansu exited at start (log $dir/tansu.log)"
        fi
        ((i < 200)) || die "demo broker: tansu did not listen on $ICEHOUSE_DEMO_BROKER within 20 s (log $dir/tansu.log)"
        sleep 0.1
    done
    log "demo broker: tansu on $ICEHOUSE_DEMO_BROKER (PID $pid, data $dir/tansu.db, log $dir/tansu.log)"
}

# start_demo_producer: creates $ICEHOUSE_DEMO_TOPIC (3 partitions) when missing
# and writes store-sales events to it until stop_demo, continuing the
# numbering after what the topic already holds (e2e/src/bin/demo-producer.rs).
start_demo_producer() {
    local bin=$CARGO_TARGET_DIR/release/demo-producer log_file=$ICEHOUSE_CACHE_DIR/demo/producer.log pid
    [[ -x $bin ]] || die "$bin is not built (cargo build --release --workspace --bins)"
    mkdir -p "${log_file%/*}"
    "$bin" --bootstrap "$ICEHOUSE_DEMO_BROKER" --topic "$ICEHOUSE_DEMO_TOPIC" --partitions 3 \
        --rate "$ICEHOUSE_DEMO_RATE" --seed "$ICEHOUSE_DEMO_SEED" --resume </dev/null >>"$log_file" 2>&1 &
    pid=$!
    _ICEHOUSE_DEMO_PIDS+=("$pid")
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$log_file" >&2
        die "demo producer exited at start (log $log_file)"
    fi
    log "demo producer: $ICEHOUSE_DEMO_RATE store sales/s into $ICEHOUSE_DEMO_TOPIC (PID $pid, log $log_file)"
}

# stop_demo: SIGTERM what start_demo_* started (the producer first, so it
# flushes into a live broker), newest first, and wait up to 10 s for each.
stop_demo() {
    local i pid n
    for ((i = ${#_ICEHOUSE_DEMO_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${_ICEHOUSE_DEMO_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for n in {1..100}; do
            kill -0 "$pid" 2>/dev/null || break
            if ((n == 100)); then kill -KILL "$pid" 2>/dev/null || true; fi
            sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
    done
    _ICEHOUSE_DEMO_PIDS=()
}

# --- Python Iceberg readers (PyIceberg, DuckDB) and servers used by the tests -------

# Pinned: DuckDB's pip-packaged extensions only load into the DuckDB version they
# were built for, and PyIceberg's pyarrow extra has no upper bound.
# pyiceberg's sql-postgres extra brings SQLAlchemy and the psycopg2 driver.
ICEHOUSE_PYTHON_READERS=(
    "pyiceberg[sql-postgres,pyarrow]==0.12.0"
    "pyarrow==26.0.1"
    "psycopg2-binary==2.9.13"
    "duckdb==1.5.5"
    "duckdb-extension-iceberg==1.5.5"
    "duckdb-extension-avro==1.5.5"
    # A local S3-compatible server (moto_server) for the S3 warehouse tests; brings boto3.
    "moto[server]==5.2.5"
    # Property-based checks of the served OpenAPI spec against the real server
    # (e2e/tests/e2e/schemathesis.rs); pinned so its checks and generated data
    # do not change under the tests.
    "schemathesis==4.32.5"
    # A real SMTP server on loopback for the mail tests (invitations, sign-up, reset).
    "aiosmtpd==1.4.6"
)

_python_readers_installed() {
    local venv=$1
    [[ -x $venv/bin/python && -f $venv/.icehouse-readers ]] || return 1
    [[ "$(<"$venv/.icehouse-readers")" == "${ICEHOUSE_PYTHON_READERS[*]}" ]] || return 1
    "$venv/bin/python" -c 'import pyiceberg.catalog.sql, duckdb, psycopg2, duckdb_extension_iceberg, duckdb_extension_avro, moto.server, boto3, schemathesis, aiosmtpd' \
        >/dev/null 2>&1 && [[ -x $venv/bin/moto_server && -x $venv/bin/schemathesis ]]
}

# ensure_python_readers: a venv with the external Iceberg readers the tests
# compare against; exports ICEHOUSE_PYTHON (its interpreter).
ensure_python_readers() {
    local venv=$ICEHOUSE_CACHE_DIR/venv lock_fd
    export ICEHOUSE_PYTHON=$venv/bin/python
    if _python_readers_installed "$venv"; then
        log "Python readers: already installed ($venv)"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || _apt_install python3
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || _apt_install python3-venv
    mkdir -p "$ICEHOUSE_CACHE_DIR"
    exec {lock_fd}>>"$ICEHOUSE_CACHE_DIR/.venv-install.lock"
    flock -w 600 "$lock_fd" || die "timed out waiting for another ensure_python_readers"
    if ! _python_readers_installed "$venv"; then
        log "Python readers: installing ${ICEHOUSE_PYTHON_READERS[*]} into $venv"
        rm -f "$venv/.icehouse-readers"
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${ICEHOUSE_PYTHON_READERS[@]}" </dev/null ||
            die "pip install of the Python readers failed"
        printf '%s\n' "${ICEHOUSE_PYTHON_READERS[*]}" >"$venv/.icehouse-readers"
        _python_readers_installed "$venv" || die "Python readers installed but do not import ($venv)"
    fi
    exec {lock_fd}>&-
    log "Python readers: ready ($ICEHOUSE_PYTHON)"
}
