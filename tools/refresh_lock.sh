#!/usr/bin/env bash
# Run the test suite in a fresh virtual environment against other dependency versions than the lock's.
#
#   tools/refresh_lock.sh            # the newest releases pip resolves (no lock); prints how they differ from it
#   tools/refresh_lock.sh --write    # the same, then rewrites requirements-lock.txt if the tests pass
#   tools/refresh_lock.sh --floor    # the lowest versions pyproject.toml declares (tools/floor-constraints.txt)
#
# After --write: commit requirements-lock.txt, run `bash .ci/run` (it installs from the new lock) and update the
# versions in the README. Extra pytest arguments go after "--" (e.g. -- -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=latest
case "${1:-}" in
  --write) mode=write; shift ;;
  --floor) mode=floor; shift ;;
esac
if [ "${1:-}" = "--" ]; then shift; fi

venv=$(mktemp -d "${TMPDIR:-/tmp}/nasvit-deps.XXXXXX")
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
constraints=()
[ "$mode" = floor ] && constraints=(-c tools/floor-constraints.txt)
"$venv/bin/pip" install --progress-bar off ${constraints[@]+"${constraints[@]}"} -e '.[dev,onnx]'
"$venv/bin/pip" check
"$venv/bin/pip" freeze --all --exclude-editable | grep -v "^pip==" | sort > "$venv/resolved.txt"

echo "== versions installed (differences from requirements-lock.txt):"
diff <(grep -v '^#' requirements-lock.txt) "$venv/resolved.txt" || true

echo "== running the test suite against them"
"$venv/bin/python" -m pytest "$@"

if [ "$mode" = write ]; then
  {
    echo "# Exact versions the test suite passed with; made by tools/refresh_lock.sh --write on $(date -u +%F)"
    echo "# ($("$venv/bin/python" --version), $(uname -m)). Install with: pip install -c requirements-lock.txt -e '.[dev,onnx]'"
    cat "$venv/resolved.txt"
  } > requirements-lock.txt
  echo "== requirements-lock.txt rewritten; commit it"
fi
