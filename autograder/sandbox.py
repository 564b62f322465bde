"""The sandbox: how the worker process is started (as root: new mount, PID, network and IPC
namespaces, every host folder but the system's covered, fresh /tmp, the worker as nobody), its
resource limits, and how it is killed with every descendant. Nothing here knows the checks."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

WORKER_UID = 65534  # nobody: the worker's user when the grader runs as root
FILE_SIZE_LIMIT = 64 * 2**20  # RLIMIT_FSIZE: no file the submission writes grows beyond 64 MB


def _quote(s):
    return shlex.quote(s)


def _others_can_enter(path):
    """True when every folder from / to ``path`` lets others (e.g. nobody) search it."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(p)
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return False
    return True


def _blocked_ancestor(path):
    """The highest folder on the way to ``path`` that others cannot search (None if none)."""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i])
        with contextlib.suppress(OSError):
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
                return p
    return None


def _under(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _python_prefixes():
    found = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        p = os.path.realpath(p)
        if p not in found:
            found.append(p)
    return [p for p in found if not any(q != p and _under(p, q) for q in found)]


# the top-level folders a worker may see: the system's programs, libraries and configuration;
# every other one (/home, /root, /work, /opt, /srv, /mnt, /var, /run, /autograder, ...) is
# covered, so no copy of the reference anywhere on the host is readable and no folder the host
# keeps (/run/lock, /var/lock, ...) is writable
VISIBLE_ROOTS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "sys")
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # fresh and empty for each worker


def _host_covers():
    """The top-level folders of / outside ``VISIBLE_ROOTS`` (and /tmp, replaced by a fresh one)."""
    covers = []
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if name not in VISIBLE_ROOTS and path != "/tmp" and os.path.isdir(path) and not os.path.islink(path):
            covers.append(path)
    return covers


def _mount_plan(stage, work, hidden, cmd):
    """The ``sh`` script run as root inside new mount/PID/network/IPC namespaces: it covers
    every top-level folder but the system's own (``VISIBLE_ROOTS``) and the grader's folders
    with an empty tmpfs only root may write (top-level files with /dev/null), keeps the Python
    installation and the other ``sys.path`` folders visible (bind mounts), gives the worker
    fresh /tmp, /var/tmp and /dev/shm (what it writes there vanishes with it), binds the sandbox
    back in place wherever it lies, then becomes nobody and starts the worker in its scratch
    folder. The script works from the sandbox through relative paths, which stay valid once the
    folders above it are covered."""
    prefixes = _python_prefixes()
    covers = []
    for p in prefixes:
        a = _blocked_ancestor(p)
        if a and a not in covers:
            covers.append(a)
    for h in list(hidden) + _host_covers():
        h = os.path.realpath(h)
        if os.path.isdir(h) and h not in covers and not any(_under(h, c) for c in covers):
            covers = [c for c in covers if not _under(c, h)] + [h]
    covers = [c for c in covers if c != "/"]
    # fresh /tmp, /var/tmp and /dev/shm always: the host's (other students' sandboxes, files
    # planted for a later student) are never the worker's, even when Python lives under /tmp
    scratch = [d for d in SCRATCH_DIRS if os.path.isdir(d) and not os.path.islink(d) and d not in covers]
    keep = [p for p in prefixes if not any(_under(d, p) for d in scratch)]  # Python, and what it imports
    for p in sys.path:
        if (p and os.path.isabs(p) and os.path.isdir(p) and not any(_under(p, h) for h in hidden)
                and not any(_under(p, k) for k in keep) and not any(_under(d, p) for d in scratch)):
            keep.append(os.path.realpath(p))
    binds = [p for p in keep if any(_under(p, c) for c in covers + scratch)]  # bound back after covering
    files = [f"/{n}" for n in sorted(os.listdir("/")) if os.path.isfile(f"/{n}") and not os.path.islink(f"/{n}")]
    sandbox = os.path.dirname(work)
    q = _quote
    stage = os.path.relpath(stage, sandbox)
    lines = ["set -e", f"cd {q(sandbox)}"]
    for i, p in enumerate(binds):
        lines += [f"mkdir -p {q(stage)}/{i}", f"mount --bind {q(p)} {q(stage)}/{i}"]
    for c in covers:
        lines.append(f"mount -t tmpfs -o mode=755,size=64k,nosuid,nodev autograde-hidden {q(c)}")
    for f in files:
        lines.append(f"mount --bind /dev/null {q(f)} || true")
    for d in scratch:  # (inside a covered folder, e.g. /var/tmp, the mount point is made first)
        lines += [f"mkdir -p {q(d)}", f"mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev autograde-scratch {q(d)}"]
    for i, p in enumerate(binds):
        lines += [f"mkdir -p {q(p)}", f"mount --no-canonicalize --bind {q(stage)}/{i} {q(p)}"]
    if any(_under(sandbox, d) for d in scratch + covers):
        lines += [f"mkdir -p {q(sandbox)}", f"mount --no-canonicalize --bind . {q(sandbox)}"]
    lines.append(f"cd {q(work)}")
    lines.append(f"exec setpriv --reuid={WORKER_UID} --regid={WORKER_UID} --clear-groups --no-new-privs "
                 + " ".join(q(a) for a in cmd))
    return "\n".join(lines), covers


_PLAN_CACHE = {}


def _sandbox_base():
    """Where the sandbox folder goes: the temporary folder, or, as root when others cannot
    enter it (the worker runs as nobody), the first of /tmp, /var/tmp, /dev/shm they can."""
    base = tempfile.gettempdir()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not _others_can_enter(base):
        for other in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(other) and _others_can_enter(other):
                return other
    return base


def _launch(sandbox, work, hidden, worker_cmd):
    """(command, user or None, note): how to start the worker here. As root: new mount, PID and
    network namespaces, the grader's folders hidden, the worker as nobody (probed once). As root
    without namespaces: nobody when the Python installation is readable by it, else root. Not
    root: the network/PID namespaces ``unshare`` allows, as the current user."""
    no_unshare = os.environ.get("AUTOGRADE_NO_UNSHARE") == "1"
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if root and not no_unshare and unshare and setpriv and sys.platform.startswith("linux"):
        ns = [unshare, "--mount", "--net", "--pid", "--ipc", "--fork", "--kill-child", "--mount-proc",
              "--propagation", "private"]
        stage = os.path.join(sandbox, "stage")
        if "root" not in _PLAN_CACHE:
            script, _ = _mount_plan(stage, work, hidden, [  # as nobody, torch must still be found
                sys.executable, "-I", "-c", "import os, sys, importlib.util; sys.path[:0] = "
                + repr([p for p in sys.path if p]) + "; assert os.getuid() != 0; os.listdir('.'); "
                "assert importlib.util.find_spec('torch')"])
            try:
                ok = subprocess.run(ns + ["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=20).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            _PLAN_CACHE["root"] = ok
        if _PLAN_CACHE["root"]:
            script, covers = _mount_plan(stage, work, hidden, worker_cmd)
            return (ns + ["sh", "-c", script], None,
                    f"worker as nobody in network, PID, IPC and mount namespaces ({len(covers)} host folder(s) hidden)")
    if root:
        if _others_can_enter(sys.executable) and all(_others_can_enter(p) for p in _python_prefixes()):
            if "nobody" not in _PLAN_CACHE:  # the namespaces root may make, as nobody (or none)
                prefix = namespace_prefix()
                try:
                    ok = bool(prefix) and subprocess.run(
                        prefix + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, timeout=5, user=WORKER_UID, group=WORKER_UID,
                        extra_groups=[]).returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
                _PLAN_CACHE["nobody"] = prefix if ok else []
            prefix = _PLAN_CACHE["nobody"]
            return (prefix + worker_cmd, WORKER_UID,
                    "worker as nobody, no mount namespace (the grader's folders closed to others while it runs), "
                    + ("network and PID namespaces" if prefix else "no namespaces"))
        return (namespace_prefix() + worker_cmd, None,
                "worker as root: no mount namespace and the Python installation is not readable by nobody; "
                + ("network and PID namespaces" if namespace_prefix() else "no namespaces (unshare unavailable)"))
    prefix = namespace_prefix()
    return (prefix + worker_cmd, None, "not root: the worker runs as the grader's user; "
            + ("network and PID namespaces" if prefix else "no namespaces (unshare unavailable)"))


def workers_isolated_from_each_other(hidden=()):
    """True when each worker gets its own mount, PID and network namespaces (as root, probed
    once): two workers running at once then see neither each other's files nor processes.
    Otherwise they share a user, and a class is graded one submission at a time."""
    sandbox = tempfile.mkdtemp(prefix="autograde-probe-", dir=_sandbox_base())
    try:
        work = os.path.join(sandbox, "work")
        os.makedirs(work)
        cmd, _, _ = _launch(sandbox, work, list(hidden), ["true"])
    finally:
        _rmtree(sandbox)
    return "--mount" in cmd and "--pid" in cmd


_NAMESPACE_CACHE = []


def namespace_prefix():
    """The ``unshare`` command line that gives the worker its own (empty) network namespace and
    PID namespace, or [] where this machine does not allow it. Probed once per process."""
    if _NAMESPACE_CACHE:
        return _NAMESPACE_CACHE[0]
    prefix = []
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux") and os.environ.get("AUTOGRADE_NO_UNSHARE") != "1":
        tail = ["--net", "--pid", "--fork", "--kill-child"]
        for extra in (["--user", "--map-current-user"], ["--user", "--map-root-user"], []):
            candidate = [unshare] + extra + tail
            try:
                ok = subprocess.run(candidate + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=5).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                prefix = candidate
                break
    _NAMESPACE_CACHE.append(prefix)
    return prefix


def _limits(memory_bytes):
    def apply():
        import resource

        with contextlib.suppress(OSError):  # out of memory, the kernel kills a worker first, never the grader
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")

        for which, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                             (resource.RLIMIT_CORE, 0)):
            try:
                soft, hard = resource.getrlimit(which)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass

    return apply


def _descendants(pid):
    """Host pids of every live descendant of ``pid`` (one pass over /proc)."""
    parent = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        data = f.read()
                    parent[int(entry)] = int(data[data.rindex(b")") + 2:].split()[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier and p not in found]
        found += kids
        frontier = kids
    return found


def _kill_group(proc):
    """SIGKILL the worker's process group and every descendant (setsid'ed ones too, found by
    parent links; in a PID namespace they die with its init anyway), and wait until they are gone."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.kill()
    for pid in tree:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while tree and time.monotonic() < deadline:
        tree = [p for p in tree if os.path.exists(f"/proc/{p}") and not _is_zombie(p)]
        if tree:
            time.sleep(0.02)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:].split()[0] in (b"Z", b"X")
    except (OSError, ValueError, IndexError):
        return True


def _describe_exit(code):
    if code is None:
        return "was killed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGSEGV": " (a segmentation fault: a crash in native code, or unbounded recursion)",
                "SIGKILL": " (killed: out of memory, or killed from outside)", "SIGXFSZ": " (a file grew too large)",
                "SIGABRT": " (aborted)"}.get(name, "")
        return f"was terminated by {name}{hint}"
    return f"exited with status {code} (os._exit or a hard crash)"


def _rmtree(path):
    def onerror(func, p, exc_info):
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)


def _probe_memory_limit(memory_mb):
    """'' when torch imports under RLIMIT_AS = ``memory_mb``, else the one-line reason (probed
    once per run, so a too-low limit is the grader's error, not every student's zero)."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", "import torch"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                              preexec_fn=_limits(int(memory_mb) * 2**20))
    except (OSError, subprocess.SubprocessError):
        return f"grader memory limit too low for torch ({memory_mb} MB)"
    return "" if proc.returncode == 0 else f"grader memory limit too low for torch ({memory_mb} MB)"


SUBREAPER = []


def become_subreaper():
    """Linux: orphaned descendants of the workers (e.g. a ``setsid`` daemon started by a
    submission) are re-parented to this process, so ``_kill_orphans`` can find and kill them
    even without a PID namespace."""
    with contextlib.suppress(Exception):
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILDSUBREAPER
            SUBREAPER.append(True)


def _children(pid):
    kids = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read()
                if int(data[data.rindex(b")") + 2:].split()[1]) == pid:
                    kids.append(int(entry))
    return kids


def _kill_orphans():
    """SIGKILL every remaining descendant of this process (and reap it), repeatedly, since a
    killed process's own children are re-parented here in turn."""
    me = os.getpid()
    for _ in range(100):
        kids = _children(me)
        if not kids:
            return
        for pid in kids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in kids:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
