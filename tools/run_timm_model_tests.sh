#!/usr/bin/env bash
# timm's own model tests on nasvit's models: tests/test_models.py of the timm version in requirements-lock.txt,
# taken from that release's source distribution on PyPI, selected with -k nasvit, with a conftest.py that imports
# nasvit (as a user would run them). Nothing of timm's is copied into this repository.
#
#   tools/run_timm_model_tests.sh              # in the project's environment, from anywhere
#   PYTHON=.venv/bin/python tools/run_timm_model_tests.sh -v
#
# Extra arguments go to pytest. Needs the package index (pip download) and about two minutes on a laptop CPU.
set -euo pipefail
python=$(command -v "${PYTHON:-python}")
case "$python" in /*) ;; *) python="$PWD/$python" ;; esac
cd "$(dirname "$0")/.."
version=$(sed -n 's/^timm==//p' requirements-lock.txt)
work=$(mktemp -d "${TMPDIR:-/tmp}/nasvit-timm-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "timm==$version"
tar -xzf "$work/timm-$version.tar.gz" -C "$work" --strip-components=2 "timm-$version/tests/test_models.py"
printf 'import nasvit  # noqa: F401 (registers nasvit_min, nasvit_max and nasvit_subnet with timm)\n' >"$work/conftest.py"
echo "timm $version tests/test_models.py -k nasvit"
cd "$work"
"$python" -m pytest test_models.py -k nasvit -p no:cacheprovider --rootdir "$work" \
  -W ignore::pytest.PytestUnknownMarkWarning -rs "$@"
