"""hw5 Q1: point-set registration by a translation, fitted by EM (NumPy/SciPy, no torch).

Points ``P`` and ``Q`` of shape ``(N, D)``; an unknown translation ``T`` (shape ``(D,)``) and an
unknown matching ``Z`` (``Z_ij = 1``: ``p_i`` is matched to ``q_j``) with prior ``Pi`` (``(N, N)``,
rows sum to 1).  The file reads top to bottom like the assignment:

1. the data model, Eq. (1), and the complete-data log-likelihood (a);
2. the E-step (b), whose responsibilities also give the incomplete-data log-likelihood;
3. the expected complete-data log-likelihood Q (c);
4. the M-step (d);
5. the EM loop :func:`register_translation` (with optional sigma annealing);
6. the demo, its figure and the command line (``python hw5_registration.py --help``), which
   writes a PNG plus the CSV/JSON numbers behind it to ``--out-dir``
   (default ``outputs/hw5_registration``).

Everything is computed in float64 log space (scikit-learn ``mixture`` style), with
``0 * log 0 = 0`` wherever the derivation has such terms.  Importing this module only defines
functions (matplotlib and tqdm are imported inside the demo code).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

try:  # Ctrl-C while the libraries load: exit 130 without a traceback, like Ctrl-C anywhere else
    import numpy as np
    from scipy.special import xlogy
    import common
    from common import ConvergenceWarning
except KeyboardInterrupt:
    if __name__ != "__main__":  # an importer handles its own Ctrl-C
        raise
    sys.exit(130)

__all__ = [
    "ConvergenceWarning",
    "RegistrationResult",
    "registration_complete_log_likelihood",
    "registration_e_step",
    "registration_log_likelihood",
    "registration_expected_log_likelihood",
    "registration_m_step",
    "register_translation",
    "make_registration_problem",
    "plot_registration",
    "main",
]

# Number of (N, N) entries handled at once by the E-step: 2**16 float64 = 512 KiB per buffer,
# so a chunk's working set stays in L2 cache.
_CHUNK_ELEMENTS = 1 << 16
# Floor for exp arguments in the E-step (see _e_step_sweep).
_EXP_FLOOR = -690.0
_EXP_FLOOR_VALUE = math.exp(_EXP_FLOOR)
# Default number of geometric steps when ``anneal`` is a start value.
ANNEAL_STEPS = 30
_SIGMA_SPREAD_MSG = (
    "sigma={sigma} is too small for the spread of the points: the squared distances in units "
    "of sigma overflow float64"
)


# ======================================================================================
# 1. Data model: Eq. (1) and the complete-data log-likelihood, hw5 Q1(a)
#    p_i + T is observed as q_j (Z_ij = 1) with noise:
#    log N_ij = log N(q_j | p_i + T, sigma) = -log(sqrt(2 pi) sigma) - ||p_i + T - q_j||^2 / (2 sigma^2)
#    log P(P, Q, Z | T, Pi) = sum_ij Z_ij [log Pi_ij + log N_ij]
# ======================================================================================
def _check_points(P, Q):
    """Validate the point sets: both (N, D), same N and D, N >= 1, D >= 1."""
    P = common.float_array(P, "P", 2)
    Q = common.float_array(Q, "Q", 2)
    if P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"P must have shape (N, D) with N >= 1 and D >= 1, got {P.shape}")
    if P.shape[0] != Q.shape[0]:
        raise ValueError(f"P and Q must have the same number of points (N_P == N_Q), got "
                         f"{P.shape[0]} and {Q.shape[0]}")
    if P.shape[1] != Q.shape[1]:
        raise ValueError(f"P and Q must have the same dimension D, got {P.shape} and {Q.shape}")
    return P, Q


def _check_sigma(sigma, name="sigma"):
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(sigma).__name__}")
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {sigma}")
    two_s2 = 2.0 * sigma * sigma
    if two_s2 == 0.0 or not math.isfinite(1.0 / two_s2):
        raise ValueError(f"{name}={sigma} is too small: 1 / (2 {name}^2) overflows float64")
    return sigma


def _check_translation(T, D, name="T"):
    T = common.float_array(T, name, 1)
    if T.shape != (D,):
        raise ValueError(f"{name} must have shape ({D},) to match the points, got {T.shape}")
    return T


def _prepare(P, Q, T, Pi, sigma):
    P, Q = _check_points(P, Q)
    N, D = P.shape
    return (P, Q, _check_translation(T, D), common.check_probabilities(Pi, (N, N), "Pi"),
            _check_sigma(sigma))


def _safe_log(x):
    """Natural log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def _log_norm_const(sigma):
    """log(sqrt(2 pi) sigma), the normaliser of Eq. (1)."""
    return 0.5 * math.log(2.0 * math.pi) + math.log(sigma)


def _centred(P, Q, T):
    """``A = P + T - c`` and ``B = Q - c`` with a common centre ``c = mean(Q)``.

    Distances are translation invariant; centring first keeps the expansion
    ``||a||^2 + ||b||^2 - 2 a.b`` free of cancellation when the points are far from 0.
    """
    c = Q.mean(axis=0)
    return P + (T - c), Q - c


def _scaled_sq_dists(A, B, W, sigma):
    """``sum_ij W_ij ||a_i - b_j||^2 / (2 sigma^2)`` without an (N, N) matrix of distances:
    ``sum_i W_i. ||a_i||^2 + sum_j W_.j ||b_j||^2 - 2 sum_i a_i . (W B)_i``.  A ValueError
    (never inf or NaN) when it overflows float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(W.sum(axis=1) @ np.einsum("ij,ij->i", A, A)
                      + W.sum(axis=0) @ np.einsum("ij,ij->i", B, B)
                      - 2.0 * np.sum(A * (W @ B))) / (2.0 * sigma * sigma)
    if not math.isfinite(value):
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    return value


def registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma):
    """Complete-data log-likelihood, hw5 Q1(a).

    ``log P(P, Q, Z | T, Pi) = sum_ij Z_ij [log Pi_ij + log N_ij]`` with Eq. (1)
    ``log N_ij = -log(sqrt(2 pi) sigma) - ||p_i + T - q_j||^2 / (2 sigma^2)``.  Used literally:
    it differs from a proper D-dimensional Gaussian log-density (normaliser
    ``D log(sqrt(2 pi) sigma)``) by the constant ``(D - 1) log(sqrt(2 pi) sigma)`` per match,
    which changes no responsibility and no M-step.

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
        The two point sets.
    Z : array_like of shape (N, N)
        Binary matching matrix (``Z_ij = 1``: ``p_i`` is matched to ``q_j``).
    T : array_like of shape (D,)
        Translation.
    Pi : array_like of shape (N, N)
        Matching prior, rows sum to 1.
    sigma : float
        Noise scale, > 0.

    Returns
    -------
    float
        The log-likelihood; ``0 * log 0`` is 0, and it is ``-inf`` only if some ``Z_ij = 1``
        has ``Pi_ij = 0`` (an impossible matching).
    """
    P, Q, T, Pi, sigma = _prepare(P, Q, T, Pi, sigma)
    N = P.shape[0]
    Z = common.float_array(Z, "Z", 2)
    if Z.shape != (N, N):
        raise ValueError(f"Z must have shape {(N, N)}, got {Z.shape}")
    if not np.all((Z == 0) | (Z == 1)):
        raise ValueError("Z must be binary (every entry 0 or 1)")
    A, B = _centred(P, Q, T)
    #      sum_ij Z_ij log Pi_ij  - (sum_ij Z_ij) log(sqrt(2 pi) sigma) - sum_ij Z_ij ||.||^2/(2 s^2)
    return float(np.sum(xlogy(Z, Pi)) - Z.sum() * _log_norm_const(sigma)
                 - _scaled_sq_dists(A, B, Z, sigma))


# ======================================================================================
# 2. E-step, hw5 Q1(b)
#    r_ij = Pi_ij N_ij / sum_k Pi_ik N_ik
#         = exp(g_ij - logsumexp_k g_ik),   g_ij = log Pi_ij + log N_ij      (log space)
#    and, from the same normaliser, the incomplete-data log-likelihood that EM increases:
#    log P(P, Q | T, Pi) = sum_i log sum_j Pi_ij N_ij = sum_i logsumexp_j g_ij
# ======================================================================================
def _log_n_factors(A, B, sigma):
    """Eq. (1) for all pairs as ONE matrix product: ``log N = A_aug @ Bt_aug``.

    In units of sigma (``a' = a / sigma``, ``b' = b / sigma``)
    ``log N_ij = a'.b' - ||a'||^2 / 2 - ||b'||^2 / 2 - log(sqrt(2 pi) sigma)``, i.e. the product
    of ``[a', -||a'||^2 / 2 - log_norm, -1]`` (N, D + 2) and ``[b', 1, ||b'||^2 / 2]^T``
    (D + 2, N).  Scaling the points (not the squared norms) by 1/sigma keeps every term finite
    whenever the scaled squared norms are: the partial sums are bounded by
    ``||a'||^2 + ||b'||^2 + |log_norm|``, so no ``inf - inf`` (NaN) can arise.  Where even
    those overflow, sigma is too small for these points: a ValueError, never a NaN result.
    The rounding error in ``log N_ij`` is about ``1e-16 (||a||^2 + ||b||^2) / (2 sigma^2)``
    (the points are centred first), e.g. ~1e-4 for unit-scale points and ``sigma = 1e-6``.
    """
    N, D = A.shape
    log_norm = _log_norm_const(sigma)
    inv_sigma = 1.0 / sigma
    A_aug, Bt_aug = np.empty((N, D + 2)), np.empty((D + 2, N))
    with np.errstate(over="ignore"):
        np.multiply(A, inv_sigma, out=A_aug[:, :D])
        np.multiply(B.T, inv_sigma, out=Bt_aug[:D])
        sq_a = np.einsum("ij,ij->i", A_aug[:, :D], A_aug[:, :D])
        sq_b = np.einsum("ij,ij->j", Bt_aug[:D], Bt_aug[:D])
        bound = 2.0 * (float(sq_a.max()) + float(sq_b.max()))
    if not math.isfinite(bound):
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    A_aug[:, D] = -(0.5 * sq_a + log_norm)
    A_aug[:, D + 1] = -1.0
    Bt_aug[D] = 1.0
    Bt_aug[D + 1] = 0.5 * sq_b
    return A_aug, Bt_aug, log_norm


def _e_step_sweep(A, B, sigma, log_pi, *, update_prior=False, R_out=None):
    """The E-step over row chunks (never an (N, N, D) temporary, only cache-sized buffers).

    Parameters
    ----------
    A, B : ndarray of shape (N, D)
        ``P + T`` and ``Q``, both shifted by the same centre (:func:`_centred`).
    sigma : float
    log_pi : ndarray of shape (N, N) or None
        ``log Pi`` (``-inf`` where ``Pi == 0``); None means the uniform prior ``1/N``.
    update_prior : bool
        Overwrite ``log_pi`` in place with ``log R`` (the M-step ``Pi <- R`` of (d), kept in log
        space so responsibilities that underflow in ``R`` are not lost).
    R_out : ndarray of shape (N, N) or None
        If given, receives the responsibilities ``R``.

    Returns
    -------
    loglik : float
        ``sum_i log sum_j Pi_ij N_ij``.
    colsum : ndarray of shape (N,)
        ``sum_i r_ij``, all the M-step needs for ``T``.
    """
    N = A.shape[0]
    A_aug, Bt_aug, log_norm = _log_n_factors(A, B, sigma)
    rows = max(1, min(N, _CHUNK_ELEMENTS // N))
    buf, ebuf = np.empty((rows, N)), np.empty((rows, N))
    colsum = np.zeros(N)
    loglik = 0.0 if log_pi is not None else -N * math.log(N)  # uniform prior: log Pi_ij = -log N
    for i0 in range(0, N, rows):
        i1 = min(N, i0 + rows)
        g, e = buf[: i1 - i0], ebuf[: i1 - i0]
        np.matmul(A_aug[i0:i1], Bt_aug, out=g)  # log N_ij, Eq. (1)
        np.minimum(g, -log_norm, out=g)  # squared distance >= 0 despite rounding
        if log_pi is not None:
            g += log_pi[i0:i1]  # g_ij = log Pi_ij + log N_ij
        gmax = g.max(axis=1, keepdims=True)
        g -= gmax
        # e = exp(max(g, F)) - exp(F), F = -690: exp of arguments below ~-708 (subnormal or 0)
        # takes a ~10x slower path and subnormal R slows every later product; this is exactly
        # 0 below F (in particular where Pi_ij = 0) and off by at most exp(F) ~ 3e-300
        # relative to the row's largest term (1) above it.  log_pi = log R stays exact.
        np.maximum(g, _EXP_FLOOR, out=e)
        np.exp(e, out=e)
        e -= _EXP_FLOOR_VALUE
        s = e.sum(axis=1)  # sum_k Pi_ik N_ik / exp(gmax_i)
        log_s = np.log(s)
        loglik += float(gmax.sum() + log_s.sum())  # sum_i logsumexp_j g_ij
        inv_s = 1.0 / s
        colsum += inv_s @ e  # sum_i r_ij
        if update_prior:
            np.subtract(g, log_s[:, None], out=log_pi[i0:i1])  # log r_ij
        if R_out is not None:
            np.multiply(e, inv_s[:, None], out=R_out[i0:i1])  # r_ij
    if not math.isfinite(loglik):  # only a sum of N huge finite terms can get here
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    return loglik, colsum


def registration_e_step(P, Q, T, Pi, sigma):
    """E-step, hw5 Q1(b): ``r_ij = Pi_ij N_ij / sum_k Pi_ik N_ik``.

    Computed in log space (``log Pi + log N`` shifted by the row maximum before ``exp``), so
    tiny ``sigma`` or far-apart point sets give no 0/0; responsibilities stay finite and
    normalised for any ``sigma`` that passes validation, unless the squared distances in units
    of ``sigma`` overflow float64, which raises ``ValueError`` (never a NaN result).

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
    T : array_like of shape (D,)
    Pi : array_like of shape (N, N)
        Prior, rows sum to 1.
    sigma : float

    Returns
    -------
    R : ndarray of shape (N, N)
        Responsibilities; each row sums to 1.
    """
    P, Q, T, Pi, sigma = _prepare(P, Q, T, Pi, sigma)
    R = np.empty_like(Pi)
    _e_step_sweep(*_centred(P, Q, T), sigma, _safe_log(Pi), R_out=R)
    return R


def registration_log_likelihood(P, Q, T, Pi, sigma):
    """Incomplete-data log-likelihood ``sum_i log sum_j Pi_ij N_ij`` (the quantity EM increases).

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
    T : array_like of shape (D,)
    Pi : array_like of shape (N, N)
    sigma : float

    Returns
    -------
    float
    """
    P, Q, T, Pi, sigma = _prepare(P, Q, T, Pi, sigma)
    return _e_step_sweep(*_centred(P, Q, T), sigma, _safe_log(Pi))[0]


# ======================================================================================
# 3. Expected complete-data log-likelihood, hw5 Q1(c)
#    Q(psi | psi_t) = E_{Z ~ R}[log P(P, Q, Z | psi)] = sum_ij r_ij [log Pi_ij + log N_ij]
# ======================================================================================
def registration_expected_log_likelihood(P, Q, R, T, Pi, sigma):
    """Expected complete-data log-likelihood, hw5 Q1(c).

    ``Q(psi | psi_t) = sum_ij r_ij [log Pi_ij + log N_ij]`` with ``0 * log 0 = 0`` and
    ``log N_ij`` from Eq. (1) (see :func:`registration_complete_log_likelihood`).

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
    R : array_like of shape (N, N)
        Responsibilities of the old parameters ``psi_t``, rows sum to 1.
    T : array_like of shape (D,)
    Pi : array_like of shape (N, N)
    sigma : float

    Returns
    -------
    float
    """
    P, Q, T, Pi, sigma = _prepare(P, Q, T, Pi, sigma)
    N = P.shape[0]
    R = common.check_probabilities(R, (N, N), "R")
    A, B = _centred(P, Q, T)
    #      sum_ij r_ij log Pi_ij  - N log(sqrt(2 pi) sigma)  - sum_ij r_ij ||.||^2 / (2 sigma^2)
    return float(np.sum(xlogy(R, Pi)) - N * _log_norm_const(sigma)
                 - _scaled_sq_dists(A, B, R, sigma))


# ======================================================================================
# 4. M-step, hw5 Q1(d): maximise Q over Pi (rows on the simplex) and T
#    Pi_ij = r_ij
#    T = (1/N) sum_ij r_ij (q_j - p_i) = (1/N) [sum_j (sum_i r_ij) q_j - sum_i p_i]
# ======================================================================================
def registration_m_step(P, Q, R):
    """M-step, hw5 Q1(d): ``Pi_ij = r_ij`` and ``T = (1/N) sum_ij r_ij (q_j - p_i)``.

    ``T`` comes from the column sums of ``R`` and its row sums (all 1), so no ``(N, N, D)``
    array is formed.

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
    R : array_like of shape (N, N)
        Responsibilities, rows sum to 1.

    Returns
    -------
    T : ndarray of shape (D,)
    Pi : ndarray of shape (N, N)
        A copy of ``R``.
    """
    P, Q = _check_points(P, Q)
    N = P.shape[0]
    R = common.check_probabilities(R, (N, N), "R")
    with np.errstate(over="ignore", invalid="ignore"):
        T = (R.sum(axis=0) @ Q - R.sum(axis=1) @ P) / N
    if not np.all(np.isfinite(T)):
        raise ValueError("T overflows float64: the coordinates of P and Q are too large "
                         "(rescale the points)")
    return T, np.array(R, dtype=np.float64, copy=True)


# ======================================================================================
# 5. EM: iterate (b) and (d) from T0, Pi0 until the log-likelihood stops changing
# ======================================================================================
@dataclass
class RegistrationResult:
    """Result of :func:`register_translation`.

    Attributes
    ----------
    T : ndarray of shape (D,)
        Estimated translation (``p_i + T`` is matched to ``q_j``).
    Pi : ndarray of shape (N, N)
        Final matching prior (the last responsibilities when ``update_prior=True``).
    R : ndarray of shape (N, N)
        Responsibilities of the final parameters (one last E-step).
    log_likelihoods : ndarray of shape (n_iter + 1,)
        ``log_likelihoods[t]`` is :func:`registration_log_likelihood` after ``t`` iterations,
        evaluated with ``sigmas[t]``.
    sigmas : ndarray of shape (n_iter + 1,)
        The sigma used at each entry (constant unless ``anneal`` was given).
    n_iter : int
        Number of EM iterations (E-step + M-step) performed.
    converged : bool
        Whether the per-point log-likelihood change fell below ``tol`` (at the final sigma)
        before ``max_iter``.
    """

    T: np.ndarray
    Pi: np.ndarray = field(repr=False)
    R: np.ndarray = field(repr=False)
    log_likelihoods: np.ndarray = field(repr=False)
    sigmas: np.ndarray = field(repr=False)
    n_iter: int = 0
    converged: bool = False

    @property
    def matches(self):
        """ndarray of shape (N,): ``R.argmax(1)``, the most probable ``q_j`` for each ``p_i``."""
        return self.R.argmax(axis=1)


def _anneal_schedule(anneal, sigma, max_iter):
    """Turn ``anneal`` (None, a start value or a sequence) into an array of sigmas."""
    if anneal is None:
        return np.empty(0)
    if isinstance(anneal, numbers.Real) and not isinstance(anneal, bool):
        start = _check_sigma(anneal, "anneal")
        if start <= sigma:
            raise ValueError(f"anneal start value ({start}) must be larger than sigma ({sigma})")
        schedule = np.geomspace(start, sigma, ANNEAL_STEPS)
    else:
        schedule = common.float_array(anneal, "anneal", 1)
        if schedule.size == 0 or np.any(schedule <= 0):
            raise ValueError("anneal must be a non-empty sequence of sigmas > 0")
        for s in schedule:
            _check_sigma(float(s), "anneal")
    if schedule.size >= max_iter:
        raise ValueError(f"the anneal schedule ({schedule.size} steps) must be shorter than "
                         f"max_iter ({max_iter})")
    return schedule


def _check_memory(N, n_matrices, what="N"):
    """Raise MemoryError (one line) before allocating ``n_matrices`` (N, N) float64 arrays
    that do not fit in the available memory."""
    need, have = n_matrices * 8 * N * N, common.available_memory()
    if have is not None and need > have:
        n_max = int(math.isqrt(have // (8 * n_matrices)))
        raise MemoryError(f"{what}={N} needs about {need / 1e9:.3g} GB for {n_matrices} (N, N) "
                          f"float64 matrices, but only {have / 1e9:.3g} GB are available; use "
                          f"at most about {n_max} points")


def register_translation(P, Q, sigma, T0=None, Pi0=None, max_iter=500, tol=1e-6, anneal=None,
                         update_prior=True):
    """EM for point-set registration by a translation, hw5 Q1 (E-step (b), M-step (d)).

    Each iteration computes the responsibilities ``r_ij`` (log space) and sets ``Pi <- R`` (if
    ``update_prior``) and ``T <- (1/N) sum_ij r_ij (q_j - p_i)``.  ``log Pi`` is carried in log
    space (``log Pi <- log R``), the same algorithm without losing entries of ``R`` that
    underflow to 0.  Cost per iteration: O(N^2 D) time; memory: one (N, N) float64 array
    (``log Pi``) plus cache-sized chunks, and two (N, N) arrays (``Pi``, ``R``) are returned
    (N = 10,000 peaks at about 2.1 GB resident).  A problem whose two (N, N) arrays do not fit
    in the available memory raises ``MemoryError`` before anything is allocated.

    **Lock-in and annealing.**  With the literal algorithm (``update_prior=True``, fixed
    ``sigma``, ``T0 = 0``) ``Pi <- R`` turns the first, still wrong, soft matches into the prior,
    which then sharpens every iteration: the fit locks onto wrong matches.  Measured: N = 200
    uniform points in a 10 x 10 square, true ``T = (1.5, -0.7)``, noise 0.05, ``sigma = 0.5``
    (``make_registration_problem(seed=0)``) stops at ``T = (0.662, -0.335)`` after 500
    iterations, with 4.5% correct matches and a log-likelihood of -129.3.  Pass ``anneal`` when
    the true translation is not small compared with ``sigma`` and the point spacing: the first
    iterations use a large sigma (all matches plausible, ``T`` moves towards the centroid
    difference) which shrinks geometrically to ``sigma``; on the same data ``anneal=5.0``
    converges (210 iterations) to ``T = (1.5001, -0.7039)`` with 98.0% correct matches and a
    log-likelihood of -46.8.  Keeping the prior uniform (``update_prior=False``) also avoids
    the lock-in on this data.

    Parameters
    ----------
    P, Q : array_like of shape (N, D)
        The point sets; ``p_i + T`` should land near its match ``q_j``.
    sigma : float
        Noise scale of Eq. (1), > 0 (the final sigma when annealing).
    T0 : array_like of shape (D,), optional
        Initial translation; default zeros.
    Pi0 : array_like of shape (N, N), optional
        Initial prior, rows sum to 1; default uniform ``1/N``.
    max_iter : int, default 500
        Maximum number of EM iterations (annealing steps included).
    tol : float, default 1e-6
        Stop when the log-likelihood per point changes by less than ``tol`` between two
        iterations at the final sigma.
    anneal : float or sequence of float, optional
        None: fixed ``sigma`` (the assignment's algorithm).  A float ``s0 > sigma``: the first
        ``ANNEAL_STEPS`` (30) iterations use sigmas ``geomspace(s0, sigma, 30)``.  A sequence:
        one iteration per listed sigma, then iterations at ``sigma`` until convergence.
    update_prior : bool, default True
        True is the assignment's M-step ``Pi <- R``; False keeps ``Pi0`` fixed (only ``T`` is
        estimated, as in coherent point drift).

    Returns
    -------
    RegistrationResult
        ``T``, ``Pi``, ``R``, ``log_likelihoods``, ``sigmas``, ``n_iter``, ``converged`` and
        ``matches = R.argmax(1)``.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` iterations did not reach ``tol > 0`` (``converged`` is False).
    """
    P, Q = _check_points(P, Q)
    N, D = P.shape
    sigma = _check_sigma(sigma)
    T = np.zeros(D) if T0 is None else _check_translation(T0, D, "T0").copy()
    max_iter = common.check_int("max_iter", max_iter)
    tol = common.check_float("tol", tol, minimum=0)
    if not isinstance(update_prior, (bool, np.bool_)):
        raise TypeError(f"update_prior must be a bool, got {type(update_prior).__name__}")
    schedule = _anneal_schedule(anneal, sigma, max_iter)
    _check_memory(N, 2, "N")
    if Pi0 is None:
        log_pi = np.full((N, N), -math.log(N)) if update_prior else None
    else:
        log_pi = _safe_log(common.check_probabilities(Pi0, (N, N), "Pi0"))

    p_sum = P.sum(axis=0)
    lls, sigmas = [], []
    converged = False
    n_iter = 0
    for it in range(max_iter):
        s = float(schedule[it]) if it < schedule.size else sigma
        # E-step (b); with update_prior the M-step Pi <- R happens in place in log_pi
        ll, colsum = _e_step_sweep(*_centred(P, Q, T), s, log_pi, update_prior=update_prior)
        lls.append(ll)
        sigmas.append(s)
        T = (colsum @ Q - p_sum) / N  # M-step (d) for T
        n_iter = it + 1
        if it > schedule.size and abs(lls[-1] - lls[-2]) < tol * N:
            converged = True
            break

    R = np.empty((N, N))
    ll, _ = _e_step_sweep(*_centred(P, Q, T), sigma, log_pi, R_out=R)
    lls.append(ll)
    sigmas.append(sigma)
    Pi = np.full((N, N), 1.0 / N) if log_pi is None else np.exp(log_pi, out=log_pi)
    if not converged and tol > 0:
        change = (f" (the log-likelihood per point still changed by "
                  f"{abs(lls[-2] - lls[-3]) / N:.3g} > tol={tol:g})" if len(lls) >= 3 else "")
        warnings.warn(f"register_translation stopped at max_iter={max_iter} without converging"
                      f"{change}; raise max_iter, use anneal, or check the result",
                      ConvergenceWarning, stacklevel=2)
    return RegistrationResult(T=T, Pi=Pi, R=R, log_likelihoods=np.asarray(lls),
                              sigmas=np.asarray(sigmas), n_iter=n_iter, converged=converged)


# ======================================================================================
# 6. Demo, figure and command line: python hw5_registration.py
# ======================================================================================
def make_registration_problem(n_points=200, translation=(1.5, -0.7), noise=0.05, shape="random",
                              seed=0):
    """Synthetic hw5 Q1 problem: ``Q[perm[i]] = P[i] + T + noise``, Q shuffled.

    Parameters
    ----------
    n_points : int
    translation : sequence of 2 floats
    noise : float
        Standard deviation of the Gaussian noise added to each ``q``, finite and >= 0.
    shape : {"random", "l"}
        "random": uniform in a 10 x 10 square; "l": uniform on an L (as in the assignment's
        Fig. 1: a 2 x 10 vertical bar and a 7 x 2 foot).
    seed : int in 0..2**63-1, numpy.random.Generator or None

    Returns
    -------
    P, Q : ndarray of shape (n_points, 2)
    perm : ndarray of shape (n_points,)
        The true matching: ``p_i`` matches ``q_{perm[i]}``.
    """
    n_points = common.check_int("n_points", n_points)
    noise = common.check_float("noise", noise, minimum=0)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
        None if seed is None else common.check_seed(seed))
    if shape == "random":
        P = rng.uniform(0.0, 10.0, size=(n_points, 2))
    elif shape == "l":  # sample the bar (2 x 10) and the foot beyond it (5 x 2) by area
        in_bar = rng.random(n_points) < 20.0 / 30.0
        bar = rng.uniform((0.0, 0.0), (2.0, 10.0), size=(n_points, 2))
        foot = rng.uniform((2.0, 0.0), (7.0, 2.0), size=(n_points, 2))
        P = np.where(in_bar[:, None], bar, foot)
    else:
        raise ValueError(f"shape must be 'random' or 'l', got {shape!r}")
    T = _check_translation(translation, 2, "translation")
    perm = rng.permutation(n_points)
    Q = np.empty_like(P)
    with np.errstate(over="ignore", invalid="ignore"):
        Q[perm] = P + T + rng.normal(0.0, noise, size=P.shape)
    if not np.all(np.isfinite(Q)):
        raise ValueError(f"Q overflows float64: translation={T.tolist()} and noise={noise} are "
                         "too large")
    return P, Q, perm


def _sigma_ticks(s_start, s_end):
    """Ticks for the sigma axis: both ends of the schedule and the 1-2-5 values between them
    (only the powers of 10 between them when that would give more than 8 ticks)."""
    lo, hi = min(s_start, s_end), max(s_start, s_end)
    decades = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
    for mantissas in [(1, 2, 5), (1,)]:
        inner = [m * 10.0**e for e in decades for m in mantissas]
        inner = [t for t in inner if lo * (1 + 1e-9) < t < hi * (1 - 1e-9)]
        if len(inner) + 2 <= 8:
            break
    return sorted({lo, hi, *inner})


def plot_registration(P, Q, perm, literal, annealed, T_true):
    """Figure: P, Q, P + T and the matches for literal and annealed EM, and log-likelihoods."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig = Figure(figsize=(16, 5.2))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.15]})
    for ax, res, name in [(axes[0], literal, "literal EM"), (axes[1], annealed, "annealed EM")]:
        PT, ok = P + res.T, res.matches == perm
        for mask, color, width, what in [(~ok, "tab:red", 0.8, "wrong"),
                                          (ok, "tab:green", 1.2, "correct")]:
            segs = [(PT[i], Q[res.matches[i]]) for i in np.flatnonzero(mask)]
            ax.add_collection(LineCollection(segs, colors=color, linewidths=width,
                                             alpha=0.7 if what == "wrong" else 1.0,
                                             label=f"{what} match ({mask.sum()})"))
        ax.scatter(P[:, 0], P[:, 1], s=10, c="tab:blue", alpha=0.45, label="P")
        ax.scatter(Q[:, 0], Q[:, 1], s=18, marker="x", c="tab:orange", label="Q")
        ax.scatter(PT[:, 0], PT[:, 1], s=16, facecolors="none", edgecolors="k", linewidths=0.7,
                   label="P + T (estimated)")
        ax.set_aspect("equal")
        ax.set_title(f"{name}: T = ({res.T[0]:.3f}, {res.T[1]:.3f}), "
                     f"{100 * ok.mean():.1f}% matches correct\n"
                     f"(true T = ({T_true[0]:.2f}, {T_true[1]:.2f}); {res.n_iter} iterations)",
                     fontsize=10)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.85)
        ax.autoscale_view()
    ax = axes[2]
    N = P.shape[0]
    s_start, s_end = float(annealed.sigmas[0]), float(annealed.sigmas[-1])
    for res, name, color in [(literal, "literal (sigma fixed)", "tab:red"),
                             (annealed, f"annealed (sigma {s_start:g} -> {s_end:g})",
                              "tab:green")]:
        ax.plot(np.arange(res.log_likelihoods.size) + 1, res.log_likelihoods / N, color=color,
                label=name)
    n_anneal = int(np.sum(annealed.sigmas != annealed.sigmas[-1]))
    if n_anneal:
        ax.axvline(n_anneal + 1, color="gray", ls=":", lw=1)
        ax.text(n_anneal + 1, 0.5, " end of annealing", rotation=90, va="center",
                transform=ax.get_xaxis_transform(), fontsize=8, color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("iteration + 1")
    ax.set_ylabel("log-likelihood per point (at the current sigma)")
    ax.set_title("sum_i log sum_j Pi_ij N_ij / N per iteration", fontsize=10)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(np.arange(annealed.sigmas.size) + 1, annealed.sigmas, color="tab:green", ls="--",
             lw=0.8, alpha=0.6, label="sigma (annealed)")
    ax2.set_yscale("log")
    ax2.yaxis.set_major_locator(FixedLocator(_sigma_ticks(s_start, s_end)))
    ax2.yaxis.set_minor_locator(NullLocator())
    ax2.yaxis.set_major_formatter(ScalarFormatter())
    ax2.set_ylabel("sigma (dashed)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", bbox_to_anchor=(1.0, 0.08), fontsize=8)
    fig.suptitle("hw5 Q1: registration by a translation with EM (Pi <- R, Eq. (1))", fontsize=12)
    return fig


def run_registration_demo(args):
    """Literal vs annealed EM on a synthetic problem; returns the written paths."""
    T_true = np.asarray(args.translation, dtype=float)
    P, Q, perm = make_registration_problem(args.n_points, T_true, args.noise, args.shape,
                                           args.seed)
    print(f"registration: {args.n_points} points ({args.shape}), true T = ({T_true[0]:g}, "
          f"{T_true[1]:g}), noise {args.noise}, sigma {args.sigma}; literal EM (T0 = 0, Pi0 "
          f"uniform, Pi <- R) vs annealed sigma {args.anneal_from} -> {args.sigma} "
          f"({ANNEAL_STEPS} geometric steps)", flush=True)
    summary = {"n_points": args.n_points, "shape": args.shape, "noise": args.noise,
               "sigma": args.sigma, "anneal_from": args.anneal_from,
               "anneal_steps": ANNEAL_STEPS, "seed": args.seed, "T_true": T_true.tolist()}
    runs = {}
    for name in common.progress_bar(["literal", "annealed"], desc="EM runs", leave=False):
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the summary line below says "converged: False"
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = runs[name] = register_translation(
                P, Q, args.sigma, max_iter=args.max_iter, tol=args.tol,
                anneal=None if name == "literal" else args.anneal_from)
        acc = float(np.mean(res.matches == perm))
        summary[name] = {"T": res.T.tolist(), "T_error": float(np.linalg.norm(res.T - T_true)),
                         "match_accuracy": acc, "n_iter": res.n_iter,
                         "converged": bool(res.converged),
                         "final_log_likelihood": float(res.log_likelihoods[-1]),
                         "seconds": time.perf_counter() - t0}
    for name, res in runs.items():
        print(f"  {name:9s} T = ({res.T[0]: .4f}, {res.T[1]: .4f})  |T - T_true| = "
              f"{summary[name]['T_error']:.4f}  matches correct "
              f"{100 * summary[name]['match_accuracy']:5.1f}%  iterations {res.n_iter} "
              f"(converged: {res.converged})  log-lik {res.log_likelihoods[-1]:.2f}")
    lit, ann = runs["literal"], runs["annealed"]

    def col(a, i):
        return repr(float(a[i])) if i < a.size else ""

    out = args.out_dir
    paths = [
        common.write_csv(
            os.path.join(out, "registration_loglik.csv"),
            ["iteration", "literal_sigma", "literal_loglik", "annealed_sigma", "annealed_loglik"],
            [[i, col(lit.sigmas, i), col(lit.log_likelihoods, i), col(ann.sigmas, i),
              col(ann.log_likelihoods, i)]
             for i in range(max(lit.log_likelihoods.size, ann.log_likelihoods.size))]),
        common.write_csv(
            os.path.join(out, "registration_points.csv"),
            ["i", "p_x", "p_y", "q_x", "q_y", "true_match", "literal_match", "annealed_match"],
            [[i, *map(repr, P[i].tolist()), *map(repr, Q[i].tolist()), int(perm[i]),
              int(lit.matches[i]), int(ann.matches[i])] for i in range(P.shape[0])]),
        common.write_json(os.path.join(out, "registration.json"), summary),
    ]
    fig = plot_registration(P, Q, perm, lit, ann, T_true)
    paths.insert(0, common.save_figure(fig, os.path.join(out, "registration.png"),
                                       bbox_inches="tight"))
    return paths


def _build_parser():
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = common.ArgumentParser(
        prog="hw5_registration.py", formatter_class=fmt,
        description="hw5 Q1: register a shuffled, translated, noisy copy Q of a 2-D point set P "
                    "with the literal EM (T0 = 0, uniform Pi0, Pi <- R, fixed sigma) and with "
                    "sigma annealed from --anneal-from down to --sigma. Writes a PNG plus the "
                    "CSV/JSON numbers behind it to --out-dir.")
    parser.add_argument("--out-dir", default=os.path.join("outputs", "hw5_registration"),
                        help="folder for the figure and its CSV/JSON numbers (checked before "
                             "the fit)")
    parser.add_argument("--seed", type=common.seed_int, default=0,
                        help="seed of the synthetic point set, its noise and its shuffle (NumPy "
                             "Generator), an integer in 0..2**63-1; the EM runs themselves are "
                             "deterministic")
    parser.add_argument("--shape", choices=["random", "l"], default="random",
                        help="point set: uniform in a 10 x 10 square, or on an L (assignment "
                             "Fig. 1)")
    parser.add_argument("--n-points", type=common.positive_int, default=200,
                        help="number of points N (bounded by the memory of 4 (N, N) float64 "
                             "matrices)")
    parser.add_argument("--translation", type=common.finite_float, nargs=2, default=[1.5, -0.7],
                        metavar=("TX", "TY"), help="true translation T")
    parser.add_argument("--noise", type=common.non_negative_float, default=0.05,
                        help="standard deviation of the Gaussian noise on Q (finite, >= 0)")
    parser.add_argument("--sigma", type=common.positive_float, default=0.5,
                        help="sigma of Eq. (1)")
    parser.add_argument("--anneal-from", type=common.positive_float, default=5.0,
                        help=f"start sigma of the annealed run ({ANNEAL_STEPS} geometric steps), "
                             "larger than --sigma")
    parser.add_argument("--max-iter", type=common.positive_int, default=500,
                        help=f"maximum EM iterations per run, more than the {ANNEAL_STEPS} "
                             "annealing steps")
    parser.add_argument("--tol", type=common.non_negative_float, default=1e-6,
                        help="stop when the log-likelihood per point changes less than this")
    return parser


def main(argv=None):
    """Command-line entry point; returns the list of written paths."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # flag combinations, checked before anything runs
    if args.anneal_from <= args.sigma:
        common.fail(parser, f"argument --anneal-from: must be larger than --sigma "
                            f"({args.anneal_from:g} <= {args.sigma:g})")
    if args.max_iter <= ANNEAL_STEPS:
        common.fail(parser, f"argument --max-iter: must be larger than the {ANNEAL_STEPS} "
                            f"annealing steps, got {args.max_iter}")
    try:  # both runs' Pi and R are held at the end: 4 (N, N) float64 matrices
        _check_memory(args.n_points, 4, "--n-points")
        common.check_outputs(common.check_out_dir(args.out_dir), ["registration.png", "registration_loglik.csv",
                                                                  "registration_points.csv", "registration.json"])
    except (MemoryError, ValueError) as err:
        common.fail(parser, str(err))
    common.check_matplotlib()
    return common.run_and_list(parser, lambda: run_registration_demo(args))


if __name__ == "__main__":
    with common.quiet_exit("hw5_registration.py"):
        main()
