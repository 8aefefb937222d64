# shellcheck shell=bash
# Shared set-up for scripts/test and scripts/demo; source it, do not run it.
#
#   ensure_servers [required|optional]  mosquitto + redis-server on this machine, and
#                                        Debian's chromium for the console's browser test
#                                        (apt-get installs them when run as root)
#   ensure_venv [EXTRA]                  $VENV with this checkout installed editable,
#                                        plus the optional extra (e.g. dev)
#
# LIMES_VENV overrides the virtual environment's location (default: .venv).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIMES_VENV:-$ROOT/.venv}"
SERVER_PACKAGES="mosquitto redis-server chromium"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

_have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

_can_apt() {
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1
}

_apt_install() {
    log "apt-get install -y $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}

ensure_servers() {
    local mode="${1:-required}" missing="" binary
    for binary in mosquitto redis-server redis-cli chromium; do
        _have "$binary" || missing="$missing $binary"
    done
    [ -z "$missing" ] && return 0
    if _can_apt; then
        # shellcheck disable=SC2086 # word splitting wanted
        _apt_install $SERVER_PACKAGES
        return 0
    fi
    local message="missing:$missing; install them with: sudo apt-get install -y $SERVER_PACKAGES"
    if [ "$mode" = optional ]; then
        log "warning: $message"
        return 0
    fi
    die "$message"
}

_find_python() {
    local candidate
    for candidate in python3.11 python3 python3.12 python3.13; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    die "Python 3.11 or newer not found; install it with: sudo apt-get install -y python3 python3-venv"
}

_create_venv() {
    local python
    python="$(_find_python)"
    log "creating $VENV with $python"
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        # Debian splits ensurepip out of python3 into python3-venv / python3.X-venv.
        _can_apt || die "'$python -m venv' failed; install venv support: sudo apt-get install -y python3-venv"
        local version
        version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        _apt_install python3-venv "python$version-venv" || _apt_install python3-venv
        "$python" -m venv "$VENV" || {
            rm -rf "$VENV"
            die "'$python -m venv $VENV' failed"
        }
    fi
}

ensure_venv() {
    local extra="${1:-}" spec="$ROOT" stamp
    [ -x "$VENV/bin/python" ] || _create_venv
    if [ -n "$extra" ]; then
        spec="$ROOT[$extra]"
    fi
    stamp="$VENV/.limes-installed-${extra:-base}"
    # Up to date when this (or the dev install, a superset) is newer than pyproject.toml.
    local s
    for s in "$stamp" "$VENV/.limes-installed-dev"; do
        if [ -f "$s" ] && [ "$s" -nt "$ROOT/pyproject.toml" ] && [ -x "$VENV/bin/limes" ]; then
            return 0
        fi
    done
    log "installing limes${extra:+[$extra]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
    touch "$stamp"
}
