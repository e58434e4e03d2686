#!/usr/bin/env bash
# Create the virtual environments of the two peer analysers used by the
# benchmarks (bliss and musicnn).  They are NOT runtime dependencies of ReFORM.
#
#   bash bench/peers/setup.sh [VENV_ROOT]
#
# VENV_ROOT defaults to .bench-venvs in the repository root (git-ignored).
# Creates $VENV_ROOT/bliss and $VENV_ROOT/musicnn.  Idempotent: an existing
# venv is reused and pip only installs what is missing.  Everything comes from
# PyPI through pip; nothing is downloaded when the analysers run (the musicnn
# model weights ship inside the musicnn wheel).
#
# Environment: PYTHON (default python3) must be CPython 3.9-3.11, because
# tensorflow-cpu 2.15.1 has no wheels for newer Pythons.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_ROOT="${1:-$REPO_ROOT/.bench-venvs}"
PYTHON="${PYTHON:-python3}"

# Pinned versions (the set that was tested; see bench/peers/README.md).
BLISS_PKGS=(bliss-audio==0.2.0 soundfile==0.14.0)
TF_PKGS=(tensorflow-cpu==2.15.1 'numpy<2')
MUSICNN_DEPS=(librosa==0.10.2.post1 'numpy<2')   # what musicnn imports besides TF
MUSICNN_PKG=musicnn==0.1.0                       # installed with --no-deps (its metadata pins numpy<1.17)

pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$pyver" in
  3.9|3.10|3.11) ;;
  *) echo "setup.sh: $PYTHON is Python $pyver; tensorflow-cpu 2.15.1 needs 3.9-3.11 (set PYTHON=...)" >&2
     exit 1 ;;
esac

mkdir -p "$VENV_ROOT"
VENV_ROOT="$(cd "$VENV_ROOT" && pwd)"

make_venv() {  # make_venv DIR
  if [ ! -x "$1/bin/python" ] || ! "$1/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "== creating venv $1"
    rm -rf "$1"
    "$PYTHON" -m venv "$1"
  else
    echo "== reusing venv $1"
  fi
}

pip_in() {  # pip_in DIR ARGS...
  local dir="$1"; shift
  "$dir/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q "$@"
}

# ---------------------------------------------------------------- bliss
BLISS="$VENV_ROOT/bliss"
make_venv "$BLISS"
pip_in "$BLISS" "${BLISS_PKGS[@]}"
"$BLISS/bin/python" -c 'import bliss_audio, soundfile, numpy; bliss_audio.Song' \
  || { echo "setup.sh: bliss venv does not import" >&2; exit 1; }

# ---------------------------------------------------------------- musicnn
MUSICNN="$VENV_ROOT/musicnn"
make_venv "$MUSICNN"
pip_in "$MUSICNN" "${TF_PKGS[@]}"
pip_in "$MUSICNN" "${MUSICNN_DEPS[@]}"
pip_in "$MUSICNN" --no-deps "$MUSICNN_PKG"
TF_CPP_MIN_LOG_LEVEL=2 "$MUSICNN/bin/python" - <<'EOF' || { echo "setup.sh: musicnn venv does not import" >&2; exit 1; }
import os, numpy, librosa, tensorflow, soundfile
import musicnn.extractor, musicnn.models
d = os.path.join(os.path.dirname(musicnn.__file__), "MSD_musicnn")
# the checkpoint ships in the wheel as hidden files: .index / .data-00000-of-00001 / .meta
assert os.path.exists(os.path.join(d, ".index")), "MSD_musicnn checkpoint missing in " + d
assert numpy.__version__.startswith("1."), "numpy must stay < 2 for tensorflow 2.15"
EOF

echo "== versions"
for v in "$BLISS" "$MUSICNN"; do
  echo "-- $v"
  "$v/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
    | grep -iE '^(bliss-audio|bliss_audio|soundfile|numpy|tensorflow-cpu|musicnn|librosa|scipy|numba|llvmlite|soxr|scikit-learn|keras|protobuf)=='
done
echo "== done: $BLISS, $MUSICNN"
