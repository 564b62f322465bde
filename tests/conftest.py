"""Shared test settings and fixtures."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (where hw5.py, hw2_ResNet.py, ... live)."""
    return ROOT


@pytest.fixture(scope="session")
def digits_split():
    """The course's digits split: (X_train, y_train, X_test, y_test), first 180 = test."""
    import utils_train_script

    return utils_train_script.load_digits_data()


@pytest.fixture(autouse=True)
def one_thread():
    """The models under test are tiny: one intra-op thread is as fast, and it keeps the suite
    from stalling when the 2 cores are shared (OpenMP threads spin when oversubscribed). A test
    that changes the thread count cannot leak it into the next."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def mount_namespaces():
    """True when this machine lets root make the namespaces the grader's sandbox uses, probed
    with a bare ``unshare`` (independently of the grader): where True, a grading that does not
    use them is a failure, not a reason to assert less."""
    import shutil
    import subprocess

    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "--mount", "--net", "--pid", "--ipc", "--fork", "--mount-proc", "true"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
