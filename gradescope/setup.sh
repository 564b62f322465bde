#!/usr/bin/env bash
# Gradescope runs this once (as root, in /autograder/source) when it builds the autograder image.
# It installs exactly the packages pinned in the requirements.txt next to it (written by
# `python autograde.py --gradescope-bundle`: the packages a submission may import, at the
# course's versions), torch and torchvision as CPU-only wheels (no CUDA download), and
# util-linux (unshare, setpriv: the worker's namespaces and unprivileged user). The pinned
# numpy needs Python >= 3.11: choose Gradescope's Ubuntu 24.04 base image.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${AUTOGRADER_ROOT:-/autograder}"
if command -v apt-get >/dev/null 2>&1; then
  apt-get update || echo "apt-get update failed (mirrors unreachable?); using the image's package lists"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-pip util-linux
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed (Ubuntu 24.04 image)"'
python3 -m venv "$ROOT/venv"
PY="$ROOT/venv/bin/python"
"$PY" -m pip install --no-cache-dir --upgrade pip
# from PyPI: everything pinned in requirements.txt except torch/torchvision
grep -E '^[A-Za-z0-9_.-]+==' "$SRC/requirements.txt" | grep -vE '^(torch|torchvision)==' > "$SRC/requirements-pypi.txt"
"$PY" -m pip install --no-cache-dir -r "$SRC/requirements-pypi.txt"
# CPU-only torch/torchvision at the pinned versions; the default index when the CPU one is unreachable
grep -E '^(torch|torchvision)==' "$SRC/requirements.txt" > "$SRC/requirements-torch.txt"
"$PY" -m pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -r "$SRC/requirements-torch.txt" \
  || "$PY" -m pip install --no-cache-dir -r "$SRC/requirements-torch.txt"
"$PY" -c "import torch, torchvision, numpy; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__)"
