"""The Gradescope autograder zip: setup.sh and run_autograder (shipped as they are in
gradescope/), grading.env, the grader (autograde.py, this package, the worker, common.py), the
reference, and the pinned requirements of what a submission may import."""

from __future__ import annotations

import math
import os
import re
import stat
import zipfile

from .checks import ALLOWED_PYPI, ASSIGNMENTS
from .report import parse_visibility
from .runner import DEFAULT_TIMEOUT, HERE, MNIST_SAMPLE


def _read_pins(requirements):
    pins = {}
    with open(requirements, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
            if m:
                pins[m.group(1).lower()] = m.group(2)
    return pins


def grader_sources():
    """The grader's code, relative to the repository root: the CLI, this package, the worker and
    common.py (what the bundle ships besides the reference and gradescope/'s two scripts)."""
    package = os.path.dirname(os.path.abspath(__file__))
    names = ["autograde.py", "autograde_worker.py", "common.py"]
    for folder in (package, os.path.join(package, "checks")):
        names += sorted(os.path.relpath(os.path.join(folder, n), HERE) for n in os.listdir(folder)
                        if n.endswith(".py") and not n.startswith("student_check"))  # (the students' file's maker)
    return names


def grader_files():
    """Every file the grader reads (writing over one would break every later grading)."""
    return grader_sources() + ["requirements.txt", os.path.join("gradescope", "setup.sh"),
                               os.path.join("gradescope", "run_autograder")] + [a["file"] for a in ASSIGNMENTS.values()]


def make_bundle(assignment, out_zip, timeout=DEFAULT_TIMEOUT, visibility=None, hide_expected=False):
    """Write the Gradescope autograder zip for ``assignment``; returns the list of members.
    ``visibility`` ({check: level}) and ``hide_expected`` are written to grading.env, which
    run_autograder passes on to every grading."""
    info = ASSIGNMENTS[assignment]
    requirements = os.path.join(HERE, "requirements.txt")
    pins = _read_pins(requirements)
    parse_visibility([f"{k}={v}" for k, v in (visibility or {}).items()])  # ValueError before writing
    missing = [p for p in ("torch", "torchvision", "numpy") if p not in pins]
    if missing:
        raise ValueError(f"{requirements} pins no version of {', '.join(missing)}")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"the timeout must be a positive number of seconds, got {timeout!r}")

    def read(name):
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            return f.read()

    def read_bytes(path):
        with open(path, "rb") as f:
            return f.read()

    def script(name):
        return read(os.path.join("gradescope", name))

    members = {
        "setup.sh": (script("setup.sh"), 0o755),
        "run_autograder": (script("run_autograder"), 0o755),
        "grading.env": (f"ASSIGNMENT={assignment}\nTIMEOUT={float(timeout):g}\n"
                        + (f"VISIBILITY={','.join(f'{k}={v}' for k, v in visibility.items())}\n" if visibility else "")
                        + ("HIDE_EXPECTED=1\n" if hide_expected else ""), 0o644),
        **{name: (read(name), 0o644) for name in grader_sources()},
        "autograder/mnist_sample.npz": (read_bytes(MNIST_SAMPLE), 0o644),  # the sandbox's small real MNIST
        info["file"]: (read(info["file"]), 0o644),
        "requirements.txt": ("".join(f"{p}=={pins[p]}\n" for p in ("torch", "torchvision") + ALLOWED_PYPI
                                     if p in pins), 0o644),
    }
    from common import atomic_write  # trusted side only: the worker never imports common

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, (text, mode) in members.items():
                zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                zi.external_attr = (stat.S_IFREG | mode) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(zi, text)

    atomic_write(out_zip, write)
    return list(members)
