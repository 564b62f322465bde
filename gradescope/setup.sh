#!/usr/bin/env bash
# Gradescope runs this once (as root, in /autograder/source) when it builds the autograder image.
# It installs exactly the packages pinned in the requirements.txt next to it (written by
# `python autograde.py --gradescope-bundle`: the packages a submission may import, at the
# course's versions), torch and torchvision as CPU-only wheels (no CUDA download), and
# util-linux (unshare, setpriv: the worker's namespaces and unprivileged user).
# The pins need Python >= 3.11 (numpy 2.4.6, scipy 1.17.1, matplotlib 3.11.2, scikit-learn 1.9.1
# and pillow 13.0.0 publish no wheel for 3.10). Ubuntu 24.04's python3 (3.12) is used as it is;
# on Ubuntu 22.04 (python3 is 3.10) this installs python3.11 from the image's package lists
# (jammy's universe), or from the deadsnakes PPA when those lack it, and says so.
# See docs/gradescope.md.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive
new_enough() {  # $1 is a Python >= 3.11
  command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
if command -v apt-get >/dev/null 2>&1; then
  apt-get update || echo "setup.sh: apt-get update failed (mirrors unreachable?); using the image's package lists"
  apt-get install -y --no-install-recommends python3 python3-venv python3-pip util-linux
fi
PYTHON=python3
if ! new_enough python3; then
  PYTHON=python3.11
  echo "setup.sh: $(python3 -V 2>&1 || echo 'no python3') is too old for the pinned packages (Python >= 3.11 needed):" \
       "installing python3.11 next to it (Ubuntu 22.04 image; Ubuntu 24.04's python3 needs nothing more)"
  if ! new_enough python3.11 && command -v apt-get >/dev/null 2>&1; then
    if ! apt-get install -y --no-install-recommends python3.11 python3.11-venv; then
      echo "setup.sh: python3.11 is not in this image's package lists; adding the deadsnakes PPA"
      { apt-get install -y software-properties-common gpg-agent && add-apt-repository -y ppa:deadsnakes/ppa \
          && apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv; } \
        || echo "setup.sh: installing python3.11 from the deadsnakes PPA failed"
    fi
  fi
  if ! new_enough python3.11; then
    echo "setup.sh: error: no Python >= 3.11 could be installed; choose Gradescope's Ubuntu 24.04 base image" >&2
    exit 1
  fi
fi
echo "setup.sh: the grader's Python is $("$PYTHON" -V 2>&1) ($(command -v "$PYTHON")), in the venv $ROOT/venv"
"$PYTHON" -m venv "$ROOT/venv"
# others may pass through $ROOT (not list it): where the container refuses namespaces, the worker
# still runs as nobody only when nobody can reach the venv's Python (else as root; see the guide)
chmod o+x "$ROOT"
PY="$ROOT/venv/bin/python"
"$PY" -m pip install --no-cache-dir --upgrade pip
# from PyPI: everything pinned in requirements.txt except torch/torchvision
grep -E '^[A-Za-z0-9_.-]+==' "$SRC/requirements.txt" | grep -vE '^(torch|torchvision)==' > "$SRC/requirements-pypi.txt"
"$PY" -m pip install --no-cache-dir -r "$SRC/requirements-pypi.txt"
# CPU-only torch/torchvision at the pinned versions; the default index when the CPU one is unreachable
grep -E '^(torch|torchvision)==' "$SRC/requirements.txt" > "$SRC/requirements-torch.txt"
"$PY" -m pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -r "$SRC/requirements-torch.txt" \
  || "$PY" -m pip install --no-cache-dir -r "$SRC/requirements-torch.txt"
"$PY" -c "import sys, torch, torchvision, numpy; print('setup.sh: Python', sys.version.split()[0], 'torch', torch.__version__, \
'torchvision', torchvision.__version__, 'numpy', numpy.__version__, '(CPU build)' if torch.version.cuda is None else \
'(CUDA build: the CPU index was unreachable; see docs/gradescope.md, Memory)')"
