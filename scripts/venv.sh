#!/usr/bin/env bash
# Create or refresh .venv for the artifact: `scripts/venv.sh PYTHON`. Called by every make target.
# - A Python older than 3.11 is refused before any venv is made (exit 2).
# - A .venv made from another Python (another version or interpreter) is rebuilt; a .venv that is
#   not a virtual environment at all is left alone and reported (exit 2).
# - Packages are installed from requirements.lock (exact pins) when the lock or pyproject.toml is
#   newer than the last install.
# - `scripts/venv.sh PYTHON --uptodate` (make's `all`): when the .venv and the system packages need nothing, the
#   check that every step of make is up to date (`python -m prophet_model uptodate`) runs beside the interpreter
#   check above, and its output and answer are kept only if this script then changes nothing: exit 0 (up to
#   date, its lines printed) or 3 (make's steps are to run; also whenever this script made or changed the .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
VENV=.venv
MARK=$VENV/.prophet-venv
STAMP=$VENV/.installed
# The editable install as a plain path entry (a .pth with the checkout's folder), not setuptools' import hook:
# the hook is imported at every interpreter start, before any of the artifact's code, and a Ctrl-C in those
# ~50 ms printed Python's traceback. A .venv installed the other way is reinstalled once.
EDITABLE=compat
SYSDEPS=$VENV/.system-deps  # the Makefile's stamp of scripts/install-system-deps.sh
CFF_SCHEMA=$VENV/share/cff-1.2.0-schema.json

needs_install() {
  [ ! -L "$VENV" ] && { [ ! -f "$STAMP" ] || [ requirements.lock -nt "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] \
    || [ "$(cat "$STAMP" 2>/dev/null)" != "$EDITABLE" ]; }
}

pid=""
changed=0
if [ "${2:-}" = "--uptodate" ] && [ -f "$VENV/pyvenv.cfg" ] && [ -f "$MARK" ] && [ -x "$VENV/bin/python" ] \
    && ! needs_install && [ -f "$CFF_SCHEMA" ] && [ -f "$SYSDEPS" ] && ! [ scripts/install-system-deps.sh -nt "$SYSDEPS" ]; then
  out=$(mktemp) err=$(mktemp)
  trap 'rm -f "$out" "$err"' EXIT
  "$VENV/bin/python" -m prophet_model uptodate >"$out" 2>"$err" &
  pid=$!
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: PYTHON=$PYTHON: not found; allowed: a Python >= 3.11 interpreter, e.g. make PYTHON=python3.11" >&2
  exit 2
fi
# One interpreter start for the three checks (its version, venv/ensurepip, its path): a no-op make
# pays for it every time. venv/ensurepip are imported only when there is no .venv to keep.
[ -e "$VENV" ] && creating=0 || creating=1
info=$("$PYTHON" -c '
import os, platform, sys
if sys.version_info < (3, 11):
    print("old " + platform.python_version())
    sys.exit(0)
try:
    if sys.argv[1] == "1":
        import ensurepip, venv
except ImportError:
    print("novenv")
    sys.exit(0)
print("ok " + os.path.realpath(sys.executable) + " " + sys.version.split()[0])
' "$creating" 2>/dev/null || true)
case "$info" in
  ok\ *) want=${info#ok } ;;
  novenv)
    echo "error: PYTHON=$PYTHON has no venv/ensurepip module; install it (Debian: apt-get install python3-venv)" >&2
    exit 2 ;;
  *)
    have=${info#old }
    if [ "${info%% *}" != old ] || [ -z "$have" ]; then  # an interpreter that could not run the checks above
      have=$("$PYTHON" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)
    fi
    echo "error: PYTHON=$PYTHON is Python $have; allowed: Python >= 3.11 (pyproject.toml requires-python), e.g. make PYTHON=python3.11" >&2
    exit 2 ;;
esac

if [ -e "$VENV" ]; then
  if [ ! -f "$VENV/pyvenv.cfg" ]; then
    echo "error: $VENV exists but is not a virtual environment; move it away so make can create one" >&2
    exit 2
  fi
  have=$(cat "$MARK" 2>/dev/null || true)
  if [ -z "$have" ] && [ -x "$VENV/bin/python" ]; then
    have=$("$VENV/bin/python" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), sys.version.split()[0])' 2>/dev/null || true)
  fi
  if [ "$have" != "$want" ]; then
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then  # checked before the old .venv goes
      echo "error: PYTHON=$PYTHON has no venv/ensurepip module; install it (Debian: apt-get install python3-venv)" >&2
      exit 2
    fi
    echo "rebuilding $VENV: it was made with '${have:-an unusable Python}', this make uses '$want'"
    if [ -n "$pid" ]; then wait "$pid" || true; pid=""; fi  # its answer is for the old .venv
    rm -rf "$VENV"
  fi
fi
if [ ! -e "$VENV" ]; then
  changed=1
  "$PYTHON" -m venv "$VENV"
fi
[ -f "$MARK" ] || echo "$want" > "$MARK"
# (a .venv that is a link: a private copy of a checkout (prophet_model/sandbox.py) links that checkout's
# environment; installing here would point its editable install at this copy, so it is used as it is)
if needs_install; then
  changed=1
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
    --config-settings editable_mode="$EDITABLE"
  echo "$EDITABLE" > "$STAMP"
fi
# The Citation File Format 1.2.0 JSON schema, for the test that validates CITATION.cff: taken from the
# cffconvert wheel (pinned by version and sha256), not installed (its dependencies conflict with the lock).
if [ ! -f "$CFF_SCHEMA" ]; then
  changed=1
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes -d "$tmp" \
    -r /dev/stdin <<'REQ'
cffconvert==2.0.0 --hash=sha256:573c825e4e16173d99396dc956bd22ff5d4f84215cc16b6ab05299124f5373bb
REQ
  mkdir -p "$VENV/share"
  "$VENV/bin/python" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("cffconvert/schemas/1.2.0/schema.json"))' \
    "$tmp"/cffconvert-2.0.0-py3-none-any.whl "$CFF_SCHEMA"
  rm -rf "$tmp"
fi
if [ "${2:-}" = "--uptodate" ]; then
  [ -n "$pid" ] || exit 3
  wait "$pid" && rc=0 || rc=$?
  [ "$changed" = 0 ] && [ "$rc" = 0 ] || exit 3
  cat "$err" >&2
  cat "$out"
fi
