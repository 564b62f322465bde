"""Small helpers shared by the command lines of ``utils_train_script.py``, ``em.py`` and ``bench/``.

Why this module exists: the argparse number types, the ``--seed`` range, the early
``--out-dir`` check and the atomic writes were written two to four times, with different
messages and behaviour. One copy keeps the command lines consistent. ``hw5.py`` and
``hw2_ResNet.py`` keep their own copies, because each must stand alone.

Importing it imports only the standard library (no torch, no NumPy, no matplotlib), so the
torch-free ``em.py`` can use it too.
"""
import argparse
import errno
import math
import os
import uuid

SEED_MAX = 2**63 - 1
SEED_RANGE = "0..2**63-1"


# ------------------------------------------------------------------------ argparse types
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
        raise argparse.ArgumentTypeError(
            f"expected an integer in {SEED_RANGE}, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in {SEED_RANGE}, got {value}")
    return value


def fail(parser, message, status=2):
    """Exit with one line ``<prog>: error: <message>`` (status 2, like argparse's own errors,
    but without repeating the usage)."""
    parser.exit(status, f"{parser.prog}: error: {message}\n")


# ------------------------------------------------------------------------ output folder
def check_out_dir(path, flag="--out-dir"):
    """Create ``path`` if needed and check that a file can be written there.

    Called before any data loading or training, so a bad folder costs nothing. Raises
    ``ValueError`` with one line naming ``flag`` and the path.
    """
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) == "":
        raise ValueError(f"{flag} must be a folder path, got {path!r}")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} exists and is not a folder; choose another {flag}")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{flag} {path} cannot be created ({_reason(err)}); "
                         f"choose another {flag}") from None
    probe = os.path.join(path, f".write-test.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"{flag} {path} is not writable ({_reason(err)}); "
                         f"choose another {flag}") from None
    return path


# ------------------------------------------------------------------------ atomic writes
class WriteError(OSError):
    """An output file could not be written; ``str()`` is the one-line message for the user,
    e.g. ``could not write outputs/em/x.csv: no space left on device``."""

    def __init__(self, path, cause):
        super().__init__(getattr(cause, "errno", None), _reason(cause))
        self.path = os.fspath(path)
        self.message = f"could not write {self.path}: {_reason(cause)}"

    def __str__(self):
        return self.message


def _reason(err):
    if getattr(err, "errno", None) == errno.ENOSPC:
        return "no space left on device"
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


def _write_all(f, data):
    """The one place file contents are written (tests make it fail like a full disk)."""
    f.write(data)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace``; an interrupted or failed write leaves the old file (or none), never a
    truncated one. The file gets the usual permissions (0o666 minus the umask).

    Raises ``WriteError`` (an ``OSError`` whose message names the path) on any I/O failure.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise WriteError(path, err) from err
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def save_figure(fig, path, dpi=120, **kwargs):
    """Render a matplotlib ``Figure`` to PNG in memory, then write it atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **kwargs)
    return atomic_write_bytes(path, buf.getvalue())
