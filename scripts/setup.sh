#!/usr/bin/env bash
# Create .venv with a Python >= 3.12, install impactmodel (editable) with its dev tools,
# and make sure PyTensor can link to a BLAS library. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

want_major=3
want_minor=12

is_suitable() {
    "$1" -c "import sys, venv; sys.exit(0 if sys.version_info >= ($want_major, $want_minor) else 1)" \
        >/dev/null 2>&1
}

find_python() {
    local candidates=()
    [ -n "${IMPACTMODEL_PYTHON:-}" ] && candidates+=("$IMPACTMODEL_PYTHON")
    candidates+=(python3.13 python3.12 python3.14 python3)
    # pyenv installs whose shims are not activated, and common system locations
    for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]* /usr/local/bin /usr/bin /opt/python*/bin; do
        for exe in "$dir"/bin/python3 "$dir"/python3.1[2-9]; do
            [ -x "$exe" ] && candidates+=("$exe")
        done
    done
    for c in "${candidates[@]}"; do
        if is_suitable "$c"; then
            command -v "$c" 2>/dev/null || echo "$c"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ] || ! is_suitable .venv/bin/python; then
    if ! py=$(find_python); then
        cat >&2 <<MSG
error: impactmodel needs Python >= ${want_major}.${want_minor} (PyMC 6 and ArviZ 1.x exist only for it),
and none was found among: \$IMPACTMODEL_PYTHON, python3.13, python3.12, python3.14, python3,
~/.pyenv/versions/3.12+, /usr/local/bin, /usr/bin.
Install one (your distribution's python3.12 + python3.12-venv packages where it has them,
'pyenv install 3.12', or 'uv python install 3.12'), or point IMPACTMODEL_PYTHON at an
interpreter, then re-run 'make'.
MSG
        exit 1
    fi
    echo "setup: using $py ($("$py" --version 2>&1))"
    rm -rf .venv
    "$py" -m venv .venv
fi

.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

# PyTensor's C backend needs a linkable BLAS (OpenBLAS + libgfortran on Debian),
# otherwise it warns and runs matrix operations slowly.
blas_flags() {
    .venv/bin/python -W ignore -c "import pytensor; print(pytensor.config.blas__ldflags)" 2>/dev/null
}
if [ -z "$(blas_flags)" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: PyTensor finds no BLAS; installing Debian's libopenblas-dev and gfortran"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev gfortran >/dev/null
    fi
    if [ -z "$(blas_flags)" ]; then
        cat >&2 <<MSG
error: PyTensor cannot link to a BLAS library, so models would run severely slower.
Install OpenBLAS with its development link and libgfortran, e.g. on Debian/Ubuntu:
    sudo apt-get install libopenblas-dev gfortran
then re-run 'make'.
MSG
        exit 1
    fi
fi
echo "setup: ready ($(.venv/bin/python --version), BLAS: $(blas_flags | cut -d' ' -f1-2))"
touch .venv/.installed
