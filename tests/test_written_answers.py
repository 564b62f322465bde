"""Checks for docs/written_answers.md and docs/rubric.md.

The key's ```answer <ID>``` blocks (one per part, bottom half of this file) are read from the
key, evaluated, and compared with independent computations (autograd, sympy, scipy
optimisation, Decimal sums, real torch layers, the checked-in seed-0 summary.json); a mutation
test shows each computable block's check fails when the block is changed (57 of the 62 blocks
are checked; the other five hold nothing to compute and say why). The older tests in the top
half check formulas typed into this file against the EM modules and other references, with
their own negative controls; every part they cover is now also checked from its block.
"""

import itertools
import math
import re
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import minimize

from types import SimpleNamespace

import hw2_bernoulli
import hw5_registration

# the older tests below use the two EM modules through one namespace, `em`;
# the answer-block checks further down never do
em = SimpleNamespace(**{n: getattr(m, n) for m in (hw5_registration, hw2_bernoulli)
                        for n in dir(m) if not n.startswith("_")})

ROOT = Path(__file__).resolve().parents[1]
KEY = ROOT / "docs" / "written_answers.md"
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _disagrees(a, b, rtol=1e-6, atol=1e-9):
    """True when a and b are not allclose (or a is not finite): the negative-control verdict."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return not (np.all(np.isfinite(a)) and np.allclose(a, b, rtol=rtol, atol=atol))


# ==========================================================================================
# hw5 Q1: registration.  (a)(i), (b)(i), (c)(i), (d)(i) and the 1(a)(ii)/(b)(ii) special cases
# are in tests/test_hw5_registration.py; here: the fully expanded special-case formulas as the key states them.
# ==========================================================================================
def _special_case(N, M, seed):
    rng = np.random.default_rng(seed)
    P = rng.normal(size=(N, 2)) * 2
    Q = rng.normal(size=(N, 2)) * 2
    R = np.zeros((N, N))
    R[:M, 0] = 1.0
    R[M:, 1] = 1.0
    return rng, P, Q, R


def key_q1_a_ii(P, Q, T, Pi, sigma):
    """1(a)(ii) with Z = I, Gaussians expanded coordinate by coordinate."""
    N = len(P)
    total = 0.0
    for i in range(N):
        dx = P[i, 0] + T[0] - Q[i, 0]
        dy = P[i, 1] + T[1] - Q[i, 1]
        total += math.log(Pi[i, i]) - math.log(math.sqrt(2 * math.pi) * sigma)
        total -= (dx * dx + dy * dy) / (2 * sigma**2)
    return total


def key_q1_c_ii(P, Q, T, Pi, sigma, M):
    """1(c)(ii): Q(psi | psi_t) without r_ij and without N(.|.,.)."""
    N = len(P)
    total = sum(math.log(Pi[i, 0]) for i in range(M)) + sum(math.log(Pi[i, 1]) for i in range(M, N))
    total -= N * math.log(math.sqrt(2 * math.pi) * sigma)
    sq = 0.0
    for i in range(N):
        j = 0 if i < M else 1
        sq += (P[i, 0] + T[0] - Q[j, 0]) ** 2 + (P[i, 1] + T[1] - Q[j, 1]) ** 2
    return total - sq / (2 * sigma**2)


def key_q1_d_ii(P, Q, M):
    """1(d)(ii): T = (M q1 + (N - M) q2) / N - mean(p)."""
    N = len(P)
    return (M * Q[0] + (N - M) * Q[1]) / N - P.sum(axis=0) / N


def test_hw5_q1_a_ii_expanded_form():
    rng = np.random.default_rng(3)
    N, sigma = 8, 0.6
    P, Q = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
    T = rng.normal(size=2)
    Pi = rng.dirichlet(np.ones(N), size=N)
    got = key_q1_a_ii(P, Q, T, Pi, sigma)
    ref = em.registration_complete_log_likelihood(P, Q, np.eye(N), T, Pi, sigma)
    assert got == pytest.approx(ref, rel=1e-12)
    # negative control: sigma instead of sigma^2 in the exponent's denominator
    bad = got + sum(np.sum((P + T - Q) ** 2, axis=1)) * (1 / (2 * sigma**2) - 1 / (2 * sigma))
    assert _disagrees(bad, ref)


@pytest.mark.parametrize("N", [6, 7])
def test_hw5_q1_c_ii_expanded_q_special_case(N):
    M = N // 2
    rng, P, Q, R = _special_case(N, M, seed=N)
    sigma = 0.8
    for _ in range(5):  # Q is a function of the *new* (T, Pi): random ones
        T = rng.normal(size=2)
        Pi = rng.dirichlet(np.ones(N), size=N)
        ref = em.registration_expected_log_likelihood(P, Q, R, T, Pi, sigma)
        assert key_q1_c_ii(P, Q, T, Pi, sigma, M) == pytest.approx(ref, rel=1e-12)
        # negative controls: the other split (ceil) for odd N, and dropping the log Pi terms
        if N % 2:
            assert _disagrees(key_q1_c_ii(P, Q, T, Pi, sigma, M + 1), ref)
        no_prior = ref - sum(math.log(Pi[i, 0]) for i in range(M)) - sum(
            math.log(Pi[i, 1]) for i in range(M, N))
        assert _disagrees(no_prior, ref)


@pytest.mark.parametrize("N, M", [(7, 3), (7, 4), (6, 3), (9, 1)])
def test_hw5_q1_d_ii_translation_special_case(N, M):
    """Both readings of [N/2] (floor 3, ceil 4 for N = 7): the formula holds for any split M."""
    rng, P, Q, R = _special_case(N, M, seed=10 * N + M)
    T_key = key_q1_d_ii(P, Q, M)
    T_em, Pi_em = em.registration_m_step(P, Q, R)
    np.testing.assert_allclose(T_key, T_em, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(Pi_em, R)  # Pi^(t+1) = R
    # independent of hw5_registration: maximise the key's expanded Q of (c)(ii) numerically over T
    Pi = np.full((N, N), 1.0 / N)
    opt = minimize(lambda t: -key_q1_c_ii(P, Q, t, Pi, 0.7, M), x0=np.zeros(2), method="BFGS",
                   options={"gtol": 1e-10})
    np.testing.assert_allclose(opt.x, T_key, atol=1e-6)
    # negative controls: equal weights (q1 + q2)/2 (right only for M = N/2), and a sign flip
    if 2 * M != N:
        assert _disagrees((Q[0] + Q[1]) / 2 - P.mean(axis=0), T_em)
    assert _disagrees(P.mean(axis=0) - (M * Q[0] + (N - M) * Q[1]) / N, T_em)


# ==========================================================================================
# hw5 Q2: VAE
# ==========================================================================================
def key_kl(y_gt, a):
    """D_KL(P || Q) = softplus((2 y_gt - 1) w.x), evaluated stably."""
    s = (2 * np.asarray(y_gt) - 1) * np.asarray(a, dtype=np.float64)
    return np.maximum(s, 0) + np.log1p(np.exp(-np.abs(s)))


def direct_kl(y_gt, a):
    """sum_y P(y) log(P(y) / Q(y|x)) with Eq. (4), in 400-digit decimal arithmetic (enough to
    resolve 1 - Q down to float64's smallest subnormals)."""
    with localcontext() as ctx:
        ctx.prec = 400
        a = Decimal(float(a))
        q0 = 1 / (1 + (-a).exp())
        q = {0: q0, 1: (-a).exp() / (1 + (-a).exp())}
        total = Decimal(0)
        for y in (0, 1):
            p = Decimal(1) if y == y_gt else Decimal(0)
            if p > 0:  # 0 log 0 = 0
                total += p * (p / q[y]).ln()
        return float(total)


def _kl_cases():
    rng = np.random.default_rng(1)
    cases = []
    for scale in (0.1, 3.0, 40.0, 400.0):  # random w.x from ~0.1 to ~1000 in size
        w, x = rng.normal(size=5), rng.normal(size=5) * scale
        cases.append(float(w @ x))
    return cases + [0.0, 709.0, 710.5, -710.5, 800.0, -800.0, 1e4, -1e4]


@pytest.mark.parametrize("y_gt", [0, 1])
def test_hw5_q2_b_ii_kl_closed_form_vs_direct_sum(y_gt):
    a = np.array(_kl_cases())
    ref = np.array([direct_kl(y_gt, v) for v in a])
    got = key_kl(y_gt, a)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-300)
    # the key's second form y_gt w.x + log(1 + exp(-w.x)) on the moderate cases
    m = np.abs(a) < 30
    np.testing.assert_allclose(y_gt * a[m] + np.log1p(np.exp(-a[m])), ref[m], rtol=1e-12)
    # torch's BCE-with-logits: Q(y = 1 | x) = sigmoid(-w.x), so the logit of y = 1 is -w.x
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(-a), torch.full((len(a),), float(y_gt), dtype=torch.float64),
        reduction="none")
    np.testing.assert_allclose(bce.numpy(), ref, rtol=1e-12, atol=1e-300)


def test_hw5_q2_b_ii_negative_controls():
    a = np.array(_kl_cases())
    for y_gt in (0, 1):
        ref = np.array([direct_kl(y_gt, v) for v in a])
        # naive log(1 + exp(s)) overflows to inf for s > ~709.8
        with np.errstate(over="ignore"):
            naive = np.log(1 + np.exp((2 * y_gt - 1) * a))
        assert not np.all(np.isfinite(naive)) and _disagrees(naive, ref)
        # wrong sign (the usual sigmoid convention Q(y=1) = sigmoid(w.x), not Eq. (4))
        assert _disagrees(key_kl(1 - y_gt, a), ref)
        if y_gt == 1:  # missing the y_gt w.x term
            assert _disagrees(np.log1p(np.exp(-np.clip(a, -700, 700))), ref)


MU = np.array([1.0, -3.0])
SIG = np.array([0.5, 2.0])


def reparam(v, sigma=SIG, mu=MU):
    return sigma * v + mu


def test_hw5_q2_c_ii_reparameterised_sample_has_law_of_z():
    Sigma = np.diag(SIG**2)
    # (1) change of variables: p_V(u) = p_v((u - mu) / sigma) / (sigma1 sigma2) = N(u; mu, Sigma)
    rng = np.random.default_rng(0)
    U = rng.normal(size=(200, 2)) * 3
    dens = stats.multivariate_normal(np.zeros(2), np.eye(2)).pdf((U - MU) / SIG) / np.prod(SIG)
    np.testing.assert_allclose(dens, stats.multivariate_normal(MU, Sigma).pdf(U), rtol=1e-12)
    # (2) moments and KS at a fixed seed
    V = reparam(rng.standard_normal((20000, 2)))
    se = SIG / math.sqrt(len(V))
    assert np.all(np.abs(V.mean(axis=0) - MU) < 4 * se)
    np.testing.assert_allclose(np.cov(V.T), Sigma, atol=0.06 * SIG.max() ** 2)
    for i in range(2):
        assert stats.kstest(V[:, i], "norm", args=(MU[i], SIG[i])).pvalue > 1e-3
    # joint: the squared Mahalanobis distance of V is chi-square with 2 degrees of freedom
    d2 = np.sum(((V - MU) / SIG) ** 2, axis=1)
    assert stats.kstest(d2, "chi2", args=(2,)).pvalue > 1e-3


def test_hw5_q2_c_ii_negative_controls():
    """The same moment/KS check rejects sigma^2 for sigma, a flipped mu, and swapped sigmas."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal((20000, 2))
    for V in (reparam(v, sigma=SIG**2), reparam(v, mu=-MU), reparam(v, sigma=SIG[::-1])):
        ks = [stats.kstest(V[:, i], "norm", args=(MU[i], SIG[i])).pvalue for i in range(2)]
        assert min(ks) < 1e-10


def key_grads(g, v, sigma):
    """(c)(iii): dL/dmu = g, dL/dsigma_i = g_i v_i; and dL/dlog(sigma_i^2) = g_i v_i sigma_i / 2."""
    return g, g * v, 0.5 * g * v * sigma


def test_hw5_q2_c_iii_gradients_vs_autograd():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        mu = torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_()
        log_var = torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_()
        sigma = torch.exp(0.5 * log_var)
        sigma.retain_grad()
        v = torch.randn(2, dtype=torch.float64, generator=gen)
        g = torch.randn(2, dtype=torch.float64, generator=gen)
        z = sigma * v + mu
        z.backward(g)  # upstream gradient g on z
        d_mu, d_sigma, d_logvar = key_grads(g, v, sigma.detach())
        torch.testing.assert_close(mu.grad, d_mu)
        torch.testing.assert_close(sigma.grad, d_sigma)
        torch.testing.assert_close(log_var.grad, d_logvar)
        # negative controls: dropping v, or swapping v1 and v2
        assert _disagrees(g.numpy(), sigma.grad.numpy())
        assert _disagrees((g * v.flip(0)).numpy(), sigma.grad.numpy())


def test_hw5_q2_c_iv_sample_blocks_gradients_rsample_passes_them():
    """Illustration only (the answer is prose): a direct draw has no gradient path."""
    mu = torch.zeros(2, requires_grad=True)
    sigma = torch.ones(2, requires_grad=True)
    dist = torch.distributions.Normal(mu, sigma)
    assert dist.sample().grad_fn is None and not dist.sample().requires_grad
    torch.manual_seed(0)
    z = dist.rsample()
    z.sum().backward()
    torch.manual_seed(0)
    v = torch.randn(2)
    torch.testing.assert_close(sigma.grad, v)  # = g * v with g = 1, as in (c)(iii)
    torch.testing.assert_close(mu.grad, torch.ones(2))


# ==========================================================================================
# hw2 Q1: Bernoulli mixture.  log P(x|p_k), the mixture log-likelihood, eta and the M-step are
# in tests/test_hw2_bernoulli.py; here: what those tests do not cover.
# ==========================================================================================
def _small_mixture(seed, n=4, D=5, K=3):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, D)) < 0.5).astype(float)
    pi = rng.dirichlet(np.ones(K))
    p = rng.uniform(0.05, 0.95, size=(K, D))
    return rng, X, pi, p


def bern_pmf(x, q):
    """(a)(i): prod_d q_d^x_d (1 - q_d)^(1 - x_d)."""
    return float(np.prod(q**x * (1 - q) ** (1 - x)))


def test_hw2_q1_a_i_pmf_is_a_distribution():
    rng = np.random.default_rng(0)
    D = 6
    q = rng.uniform(0.01, 0.99, size=D)
    xs = np.array(list(itertools.product([0, 1], repeat=D)), dtype=float)
    probs = np.array([bern_pmf(x, q) for x in xs])
    assert probs.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(probs @ xs, q, rtol=1e-12)  # marginals P(x_d = 1) = q_d
    np.testing.assert_allclose(np.log(probs), em.bernoulli_log_prob(xs, q[None])[:, 0], rtol=1e-12)
    # negative control: exponents swapped
    bad = np.array([float(np.prod(q ** (1 - x) * (1 - q) ** x)) for x in xs])
    assert _disagrees(bad @ xs, q)


def test_hw2_q1_b_iii_complete_likelihood_marginalises_to_mixture():
    """sum over all K^n one-hot Z of prod_i prod_k [pi_k P(x_i|p_k)]^z_ik = P(D | pi, p)."""
    _, X, pi, p = _small_mixture(0)
    n, K = len(X), len(pi)
    lik = np.array([[bern_pmf(x, pk) for pk in p] for x in X])
    total = bad = 0.0
    for ks in itertools.product(range(K), repeat=n):
        Z = np.eye(K)[list(ks)]
        total += np.prod((pi[None] * lik) ** Z)
        bad += np.prod(lik**Z)  # negative control: P(D|Z) without the prior P(Z|pi)
    ref = math.exp(em.bernoulli_mixture_log_likelihood(X, pi, p))
    assert total == pytest.approx(ref, rel=1e-12)
    assert _disagrees(bad, ref)


def key_expected_complete_loglik(X, eta, pi_new, p_new):
    """(b)(v): sum_i sum_k eta_ik [log pi_k + sum_d x log p + (1 - x) log(1 - p)]."""
    L = X @ np.log(p_new).T + (1 - X) @ np.log1p(-p_new).T
    return float(np.sum(eta * (np.log(pi_new)[None] + L)))


def test_hw2_q1_b_v_expected_complete_loglik_by_enumeration():
    """E over the posterior of Z (old parameters) of log P(Z, D | new parameters), by brute force."""
    rng, X, pi, p = _small_mixture(1)
    n, K = len(X), len(pi)
    pi_new, p_new = rng.dirichlet(np.ones(K)), rng.uniform(0.05, 0.95, size=p.shape)
    lik_old = np.array([[bern_pmf(x, pk) for pk in p] for x in X])
    lik_new = np.array([[bern_pmf(x, pk) for pk in p_new] for x in X])
    post = np.zeros(K**n)
    logc = np.zeros(K**n)
    for idx, ks in enumerate(itertools.product(range(K), repeat=n)):
        post[idx] = np.prod([pi[k] * lik_old[i, k] for i, k in enumerate(ks)])
        logc[idx] = sum(math.log(pi_new[k] * lik_new[i, k]) for i, k in enumerate(ks))
    post /= post.sum()
    ref = float(post @ logc)
    eta = em.bernoulli_e_step(X, pi, p)
    assert key_expected_complete_loglik(X, eta, pi_new, p_new) == pytest.approx(ref, rel=1e-12)
    assert em.bernoulli_expected_log_likelihood(X, eta, pi_new, p_new) == pytest.approx(ref, rel=1e-12)
    # negative control: the prior pi instead of the posterior eta as the weights
    assert _disagrees(key_expected_complete_loglik(X, np.tile(pi, (n, 1)), pi_new, p_new), ref)


def _q_torch(X, eta, pi, p):
    L = X @ torch.log(p).T + (1 - X) @ torch.log1p(-p).T
    return torch.sum(eta * (torch.log(pi)[None] + L))


def key_dq_dp(X, eta, p):
    """(c)(i): dQ/dp_kd = sum_i eta_ik (x_id / p_kd - (1 - x_id) / (1 - p_kd))."""
    return eta.T @ X / p - eta.T @ (1 - X) / (1 - p)


def test_hw2_q1_c_stationarity_and_lagrange():
    rng = np.random.default_rng(2)
    n, D, K = 30, 6, 3
    X = (rng.random((n, D)) < 0.4).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    p0 = rng.uniform(0.1, 0.9, size=(K, D))
    pi0 = rng.dirichlet(np.ones(K))
    pt = torch.tensor(p0, requires_grad=True)
    _q_torch(torch.tensor(X), torch.tensor(eta), torch.tensor(pi0), pt).backward()
    np.testing.assert_allclose(key_dq_dp(X, eta, p0), pt.grad.numpy(), rtol=1e-10)
    # the key's M-step: gradient in p is zero there; Lagrange condition N_k / pi_k + lambda = 0
    # holds with lambda = -n for every k
    pi_new, p_new = em.bernoulli_m_step(X, eta)
    Nk = eta.sum(axis=0)
    np.testing.assert_allclose(p_new, eta.T @ X / Nk[:, None], rtol=1e-12)
    np.testing.assert_allclose(key_dq_dp(X, eta, p_new), 0.0, atol=1e-10)
    np.testing.assert_allclose(Nk / pi_new + (-n), 0.0, atol=1e-9)
    np.testing.assert_allclose(pi_new, Nk / Nk.sum(), rtol=1e-12)
    # negative controls: the derivative of log(1 - p) taken as +1/(1 - p) (the submitted C.i);
    # p normalised by n instead of N_k; pi without the constraint's normalisation
    assert _disagrees(eta.T @ X / p0 + eta.T @ (1 - X) / (1 - p0), pt.grad.numpy())
    assert _disagrees(key_dq_dp(X, eta, eta.T @ X / n), 0.0, atol=1e-6)
    assert _disagrees(Nk / (Nk / Nk.max()) + (-n), 0.0, atol=1e-6)


# ==========================================================================================
# hw2 Q2: deep net
# ==========================================================================================
def sig(u):
    return 1 / (1 + np.exp(-u))


def _random_points(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=2.0, size=n) for _ in range(4)]  # w1, w2, w3, x


def _autograd(w1, w2, w3, x):
    w1, w2, w3 = (torch.tensor(w, requires_grad=True) for w in (w1, w2, w3))
    x = torch.tensor(x)
    f = w3 * torch.sigmoid(w2 * torch.sigmoid(w1 * x))
    f.sum().backward()
    return w1.grad.numpy(), w2.grad.numpy(), w3.grad.numpy()


def key_grads_deep(w1, w2, w3, x):
    """(d)-(f) with h1 = sigma(w1 x), h2 = sigma(w2 h1) retained from the forward pass."""
    h1 = sig(w1 * x)
    h2 = sig(w2 * h1)
    d2 = w3 * h2 * (1 - h2)  # df/du2
    d1 = d2 * w2 * h1 * (1 - h1)  # df/du1
    return d1 * x, d2 * h1, h2  # df/dw1, df/dw2, df/dw3


def test_hw2_q2_b_sigmoid_derivative_both_forms():
    u = torch.linspace(-30, 30, 2001, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(u).sum().backward()
    un = u.detach().numpy()
    form1 = np.exp(-un) / (1 + np.exp(-un)) ** 2
    form2 = sig(un) * (1 - sig(un))
    # autograd (like form 2) computes 1 - sigma(u), which loses digits for large u: allow
    # float64's absolute rounding (~1e-16) there
    np.testing.assert_allclose(form1, u.grad.numpy(), rtol=1e-9, atol=3e-16)
    np.testing.assert_allclose(form2, u.grad.numpy(), rtol=1e-9, atol=3e-16)
    # negative controls: a missing square, and sigma (1 + sigma)
    assert _disagrees(np.exp(-un) / (1 + np.exp(-un)), u.grad.numpy())
    assert _disagrees(sig(un) * (1 + sig(un)), u.grad.numpy())


def test_hw2_q2_def_gradients_vs_autograd():
    w1, w2, w3, x = _random_points()
    g1, g2, g3 = _autograd(w1, w2, w3, x)
    k1, k2, k3 = key_grads_deep(w1, w2, w3, x)
    np.testing.assert_allclose(k3, g3, rtol=1e-12)
    np.testing.assert_allclose(k2, g2, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(k1, g1, rtol=1e-10, atol=1e-300)
    h1 = sig(w1 * x)
    h2 = sig(w2 * h1)
    # negative controls: missing w3 in df/dw2; missing x in df/dw1; sigma'(u) without the (1 - h)
    assert _disagrees(h2 * (1 - h2) * h1, g2)
    assert _disagrees(w3 * h2 * (1 - h2) * w2 * h1 * (1 - h1), g1)
    assert _disagrees(w3 * h2 * w2 * h1 * x, g1)


def conv_out(i, f, s=1, p=0):
    return (i + 2 * p - f) // s + 1


def test_hw2_q2_g_output_sizes_real_layers():
    x = torch.zeros(1, 1, 28, 28)
    conv = torch.nn.Conv2d(1, 20, 5, stride=1, padding=0)
    y = conv(x)
    assert y.shape == (1, 20, 24, 24) and conv_out(28, 5) == 24
    z = torch.nn.MaxPool2d(2)(y)
    assert z.shape == (1, 20, 12, 12) and conv_out(24, 2, s=2) == 12


def test_hw2_q2_h_all_integer_solutions():
    """All (F, S) with padding 0 that take 20 x 12 x 12 to 50 x 4 x 4 after a 2x2 max-pool."""
    x = torch.zeros(1, 20, 12, 12)
    pool = torch.nn.MaxPool2d(2)
    solutions = []
    with torch.no_grad():
        for F in range(1, 13):
            for S in range(1, 13):
                y = torch.nn.Conv2d(20, 50, F, stride=S, padding=0)(x)
                assert y.shape[-1] == conv_out(12, F, S)
                if y.shape[-1] >= 2 and pool(y).shape == (1, 50, 4, 4):
                    solutions.append((F, S, y.shape[-1]))
    assert solutions == [(4, 1, 9), (5, 1, 8)]
    exact = [(F, S) for F, S, o in solutions if o == 2 * 4]  # the pool tiles the map exactly
    assert exact == [(5, 1)]
    conv = torch.nn.Conv2d(20, 50, 5, stride=1)
    assert tuple(conv.weight.shape) == (50, 20, 5, 5)
    assert sum(t.numel() for t in conv.parameters()) == 50 * 20 * 25 + 50


# ==========================================================================================
# Appendix: the submitted hw2 answers, evaluated as written
# ==========================================================================================
def submitted_a_iii_middle(X, pi, p):
    """A.iii, second-to-last step: sum_i sum_k pi_k log P(x_i | p_k)."""
    L = em.bernoulli_log_prob(X, p)
    return float(np.sum(L @ pi))


def submitted_a_iii_final(X, pi, p):
    """A.iii, last step: sum_i log sum_k pi_k (sum_d p^x (1 - p)^(1 - x))  -- a sum over d."""
    s = np.array([[np.sum(pk**x * (1 - pk) ** (1 - x)) for pk in p] for x in X])
    return float(np.sum(np.log(s @ pi)))


def test_submitted_q1_a_iii_log_likelihood_is_wrong():
    for seed in range(3):
        _, X, pi, p = _small_mixture(seed, n=6, D=5)
        ref = em.bernoulli_mixture_log_likelihood(X, pi, p)
        literal = sum(math.log(sum(pi[k] * bern_pmf(x, p[k]) for k in range(len(pi)))) for x in X)
        assert literal == pytest.approx(ref, rel=1e-12)  # the key's (a)(iii)
        middle, final = submitted_a_iii_middle(X, pi, p), submitted_a_iii_final(X, pi, p)
        assert middle < ref - 1e-6  # log inside the sum over k: Jensen's lower bound, not equal
        assert final > 0 > ref  # a sum of D probabilities is not a likelihood (can exceed 1)
    # with D = 1 the sum over d is the product, so the last step is only right there
    _, X, pi, p = _small_mixture(7, n=6, D=1)
    assert submitted_a_iii_final(X, pi, p) == pytest.approx(
        em.bernoulli_mixture_log_likelihood(X, pi, p), rel=1e-12)


def test_submitted_q1_b_ii_first_equality_is_wrong():
    """B.ii writes P(x|z) = prod_k pi_k^z_k = prod_k P(x|p_k)^z_k; only the second is right."""
    _, X, pi, p = _small_mixture(3)
    x, k = X[0], 1
    z = np.eye(len(pi))[k]
    right = np.prod([bern_pmf(x, pk) ** zk for pk, zk in zip(p, z)])
    first = np.prod(pi**z)
    assert right == pytest.approx(bern_pmf(x, p[k]), rel=1e-12)
    assert _disagrees(first, right)
    assert first == pytest.approx(pi[k])  # it is P(z | pi) of B.i


def test_submitted_q1_b_iv_and_b_i_agree_with_the_key():
    _, X, pi, p = _small_mixture(4)
    K = len(pi)
    eta_sub = np.array([[pi[k] * np.prod(p[k] ** x * (1 - p[k]) ** (1 - x)) for k in range(K)]
                        for x in X])
    eta_sub /= eta_sub.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(eta_sub, em.bernoulli_e_step(X, pi, p), rtol=1e-12)
    for k in range(K):  # B.i: prod_k pi_k^z_k with one-hot z
        assert np.prod(pi ** np.eye(K)[k]) == pytest.approx(pi[k])


def test_submitted_q1_c_i_derivative_has_a_sign_error():
    rng = np.random.default_rng(5)
    n, D, K = 25, 4, 2
    X = (rng.random((n, D)) < 0.5).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    p0 = rng.uniform(0.1, 0.9, size=(K, D))
    pt = torch.tensor(p0, requires_grad=True)
    _q_torch(torch.tensor(X), torch.tensor(eta), torch.tensor(np.full(K, 1 / K)), pt).backward()
    submitted = eta.T @ X / p0 + eta.T @ (1 - X) / (1 - p0)  # "x/p + (1-x)/(1-p)"
    assert _disagrees(submitted, pt.grad.numpy())
    np.testing.assert_allclose(key_dq_dp(X, eta, p0), pt.grad.numpy(), rtol=1e-10)
    # the submitted next line, sum_i eta_ik [x(1 - p) + p(1 - x)] = 0, has no root in (0, 1):
    # each term is 1 - p (x = 1) or p (x = 0), both > 0; so the final p~ does not follow from it
    grid = np.linspace(1e-6, 1 - 1e-6, 1001)
    for k in range(K):
        for d in range(D):
            lhs = [np.sum(eta[:, k] * (X[:, d] * (1 - q) + q * (1 - X[:, d]))) for q in grid]
            assert min(lhs) > 0
    # while the correct stationarity equation sum_i eta_ik (x - p) = 0 is solved by the M-step
    _, p_new = em.bernoulli_m_step(X, eta)
    np.testing.assert_allclose(eta.T @ X - eta.sum(axis=0)[:, None] * p_new, 0.0, atol=1e-12)


def test_submitted_q1_c_ii_lagrange_steps_are_wrong():
    rng = np.random.default_rng(6)
    n, K = 20, 3
    eta = rng.dirichlet(np.ones(K), size=n)
    Nk = eta.sum(axis=0)
    lam = Nk.sum()  # the submitted lambda = sum_k N_k = n
    pi_sub = Nk / lam  # the submitted pi_k = N_k / lambda
    # their own stationarity condition N_k / pi_k + lambda = 0 is not met: it gives 2 lambda
    np.testing.assert_allclose(Nk / pi_sub + lam, 2 * n)
    # with the constraint written as lambda (sum_k pi_k - 1), the condition holds at lambda = -n
    np.testing.assert_allclose(Nk / pi_sub + (-n), 0.0, atol=1e-12)

    # their lambda-objective sum_i sum_k eta_ik log(N_k - lambda) + (sum_k N_k - lambda):
    def g(l):
        with np.errstate(invalid="ignore"):
            return float(np.sum(eta * np.log(Nk - l)[None]) + (Nk.sum() - l))

    assert math.isnan(g(lam))  # undefined at their own solution (N_k - n < 0)
    l0 = 0.5 * Nk.min()  # where it is defined, its derivative is not their (1/l) sum eta - 1
    h = 1e-6
    numeric = (g(l0 + h) - g(l0 - h)) / (2 * h)
    claimed = Nk.sum() / l0 - 1
    assert numeric == pytest.approx(-np.sum(Nk / (Nk - l0)) - 1, rel=1e-6)
    assert _disagrees(numeric, claimed)


def test_submitted_q2_b_d_e_agree_with_autograd():
    w1, w2, w3, x = _random_points(seed=1)
    g1, g2, g3 = _autograd(w1, w2, w3, x)
    s1, s2 = sig(w1 * x), sig(w2 * sig(w1 * x))
    np.testing.assert_allclose(s2, g3, rtol=1e-12)  # D: sigma2(w2 sigma1(w1 x))
    np.testing.assert_allclose(w3 * s2 * (1 - s2) * s1, g2, rtol=1e-10, atol=1e-300)  # E
    u = np.linspace(-20, 20, 401)
    np.testing.assert_allclose(np.exp(-u) / (1 + np.exp(-u)) ** 2, sig(u) * (1 - sig(u)),
                               rtol=1e-9, atol=3e-16)  # B: both forms agree (and see above)


def test_submitted_q2_f_formula_is_df_dw1_labelled_df_dw2():
    w1, w2, w3, x = _random_points(seed=2)
    g1, g2, _ = _autograd(w1, w2, w3, x)
    s1 = sig(w1 * x)
    s2 = sig(w2 * s1)
    submitted = w3 * s2 * (1 - s2) * w2 * s1 * (1 - s1) * x
    np.testing.assert_allclose(submitted, g1, rtol=1e-10, atol=1e-300)  # right for w1
    assert _disagrees(submitted, g2)  # but labelled df/dw2
    # the submitted factor dx1/dw2 = x: the derivative of x1 = w1 x is x wrt w1, 0 wrt w2


def test_submitted_q2_g_size_formula_is_wrong():
    """G states [(I - F + 2 S) / 2] + 1 and then evaluates (I - F + 2 P) / S + 1 instead."""
    def stated(I, F, S, P):
        return (I - F + 2 * S) / 2 + 1

    conv = torch.nn.Conv2d(1, 20, 5)
    real = conv(torch.zeros(1, 1, 28, 28)).shape[-1]
    assert real == 24 == conv_out(28, 5, 1, 0)
    assert stated(28, 5, 1, 0) == 13.5 != real
    # stated formula on other layers too: e.g. a stride-2, padding-1, 3x3 conv on 8x8
    assert conv_out(8, 3, 2, 1) == torch.nn.Conv2d(1, 1, 3, 2, 1)(torch.zeros(1, 1, 8, 8)).shape[-1]
    assert stated(8, 3, 2, 1) != conv_out(8, 3, 2, 1)


def test_submitted_q2_h_answer_is_wrong():
    x = torch.zeros(1, 20, 12, 12)
    pool = torch.nn.MaxPool2d(2)
    with torch.no_grad():
        # the submitted F = 11 (stride 1): 2x2 after the conv, 1x1 after the pool
        y = torch.nn.Conv2d(20, 50, 11, stride=1)(x)
        assert y.shape == (1, 50, 2, 2) and pool(y).shape == (1, 50, 1, 1)
        # its own relation F = 12 - 3 S (conv output 4x4, pool forgotten): pool gives 2x2
        y = torch.nn.Conv2d(20, 50, 12 - 3 * 1, stride=1)(x)
        assert y.shape[-1] == 4 and pool(y).shape[-1] == 2
        # and F = 11 is not even on that line: 12 - 3 * (1/12) = 11.75
        assert 12 - 3 * (1 / 12) != 11
    # a stride of 1/12 is not a stride
    with pytest.raises((TypeError, RuntimeError, ValueError)):
        torch.nn.Conv2d(20, 50, 11, stride=1 / 12)(x)


# ==========================================================================================
# hw2 Q3(c)(d): the numbers the key cites
# ==========================================================================================
ROW = re.compile(r"^\|\s*(\d+)\s*\|((?:\s*[\d.]+\s*\|)+)\s*$")
SUMMARY = ROOT / "docs" / "results" / "resnet_seed0_summary.json"


def _table(text, widths=(1, 2, 4, 64)):
    """{C: [numbers of the row]} of the first markdown table rows that start with a width C."""
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if m and int(m.group(1)) in widths and int(m.group(1)) not in rows:
            rows[int(m.group(1))] = [float(v) for v in m.group(2).split("|") if v.strip()]
    return rows


def _seed0_summary():
    import json

    data = json.loads(SUMMARY.read_text())
    return {r["C"]: r for r in data["runs"]}, data


def test_hw2_q3_summary_file_has_the_format_the_sweep_writes(tmp_path):
    """The checked-in file is what utils_train_script.write_summary_json writes: same keys,
    the default sweep (C = 1, 2, 4, 64, seed 0, 4000 of 4000 epochs, all complete)."""
    import json
    from types import SimpleNamespace

    import utils_train_script

    fake = [SimpleNamespace(C=1, seed=0, history=[(0.1, 0.2, 0.3, 0.4)], status="complete",
                            reason=None)]
    utils_train_script.write_summary_json(fake, 4000, str(tmp_path / "s.json"))
    written = json.loads((tmp_path / "s.json").read_text())
    runs, data = _seed0_summary()
    assert set(data) == set(written)
    assert data["partial"] is False
    for r in data["runs"]:
        assert set(r) == set(written["runs"][0])
        assert r["seed"] == 0 and r["status"] == "complete"
        assert r["epochs_done"] == r["epochs_requested"] == 4000
    assert sorted(runs) == [1, 2, 4, 64]


def test_hw2_q3_key_table_is_the_checked_in_seed0_run():
    """The key's table (final train, final test, gap) equals the real run's summary.json."""
    runs, _ = _seed0_summary()
    key = _table(KEY.read_text())
    assert sorted(key) == [1, 2, 4, 64], "the key's Q3 table was not found"
    for C, (train, test, gap) in key.items():
        assert train == pytest.approx(runs[C]["final_train_error"], abs=5e-5), C
        assert test == pytest.approx(runs[C]["final_test_error"], abs=5e-5), C
        assert gap == pytest.approx(test - train, abs=1.5e-4), C
    # the gradeable sentences' claims at seed 0: errors fall with C over 1, 2, 4; the gap widens;
    # C = 64 has the lowest test error and a smaller gap than C = 2 and C = 4
    tr = {C: runs[C]["final_train_error"] for C in runs}
    te = {C: runs[C]["final_test_error"] for C in runs}
    gap = {C: te[C] - tr[C] for C in runs}
    assert tr[1] > tr[2] > tr[4] >= tr[64] and te[1] > te[2] > te[4] > te[64]
    assert gap[1] < gap[2] < gap[4] and gap[64] < min(gap[2], gap[4])
    # negative control: the same comparison rejects the older README numbers for C = 4
    assert abs(0.2056 - runs[4]["final_test_error"]) > 5e-5


def test_hw2_q3_sweep_table_wherever_it_lives_is_consistent():
    """The sweep table (README.md today; the lead may move it to docs/) has the header
    'C | final train error | final test error | ...'; its gap column is test - train and its
    C = 64 row equals the checked-in seed-0 run."""
    candidates = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    found = None
    for path in candidates:
        if path == KEY or not path.exists():
            continue
        text = path.read_text()
        if re.search(r"\|\s*C\s*\|\s*final train error\s*\|\s*final test error", text):
            found = _table(text)
            break
    assert found is not None and sorted(found) == [1, 2, 4, 64], "sweep table not found"
    runs, _ = _seed0_summary()
    for C, row in found.items():
        assert row[-1] == pytest.approx(row[1] - row[0], abs=1.5e-3), C
    assert found[64][0] == pytest.approx(runs[64]["final_train_error"], abs=5e-5)
    assert found[64][1] == pytest.approx(runs[64]["final_test_error"], abs=5e-5)


def test_hw2_q3_parameter_counts():
    import hw2_ResNet

    counts = {C: sum(t.numel() for t in hw2_ResNet.ResNet(C).parameters()) for C in (1, 2, 4, 64)}
    formula = {C: 9 * C + 2 * C + 18 * C * C + 4 * C + 10 * C + 10 for C in counts}
    assert counts == formula == {1: 53, 2: 132, 4: 398, 64: 75338}
    text = KEY.read_text()
    assert "53, 132, 398 and 75,338 for $C = 1, 2, 4, 64$" in text


def test_key_cites_only_existing_tests():
    """Every `WA::name` / `EM::name` the key cites is a test function of that file."""
    text = KEY.read_text()
    # EM:: tests live in the EM modules' test files (tests/test_hw5_registration.py, test_hw2_bernoulli.py)
    em_text = "\n".join(f.read_text() for f in sorted((ROOT / "tests").glob("test_*.py")))
    files = {"WA": Path(__file__).read_text(), "EM": em_text}
    cited = set(re.findall(r"\b(WA|EM)::(test_\w+)", text))
    assert len(cited) > 20
    for tag, name in sorted(cited):
        assert re.search(rf"^def {name}\(", files[tag], re.M), f"{tag}::{name} missing"
    # negative control: a misspelt name is caught by the same search
    assert not re.search(r"^def test_hw2_q2_h_all_integer_solution\(", files["WA"], re.M)


# ==========================================================================================
# The key's ```answer <ID>``` blocks: every part has one; each computable block is evaluated
# from the key's text and compared with an independent computation; mutants of each block
# are caught (the proof that these tests read the key).
# ==========================================================================================
BLOCK = re.compile(r"^```answer ([\w.]+)( unchecked)?\n(.*?)^```$", re.M | re.S)

PART_IDS = (
    [f"hw5.Q1.{p}" for p in ("a.i", "a.ii", "b.i", "b.ii", "c.i", "c.ii", "d.i", "d.ii")]
    + [f"hw5.Q2.{p}" for p in ("a.identity", "a.diagonal", "b.i", "b.ii", "c.i", "c.ii", "c.iii",
                               "c.iv")]
    + [f"hw5.Q3.{p}" for p in "abcd"]
    + [f"hw2.Q1.{p}" for p in ("a.i", "a.ii", "a.iii", "b.i", "b.ii", "b.iii", "b.iv", "b.v",
                               "c.i", "c.ii")]
    + [f"hw2.Q2.{p}" for p in "abcdefgh"] + [f"hw2.Q3.{p}" for p in "abcd"]
    + [f"hw2.sheet.{r}" for r in ("Q1.A.i", "Q1.A.ii", "Q1.A.iii", "Q1.B.i", "Q1.B.ii",
                                  "Q1.B.iii", "Q1.B.iv", "Q1.B.v", "Q1.C.i", "Q1.C.ii", "Q2.A",
                                  "Q2.B", "Q2.C", "Q2.D", "Q2.E", "Q2.F", "Q2.G", "Q2.H", "Q3.C",
                                  "Q3.D")])


def _blocks(text=None):
    text = KEY.read_text() if text is None else text
    out = {}
    for m in BLOCK.finditer(text):
        out.setdefault(m.group(1), []).append((bool(m.group(2)), m.group(3)))
    return out


def _fields(body):
    """'name = value' lines -> {name: value} (other lines ignored)."""
    out = {}
    for line in body.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            out[k.strip()] = v.strip()
    return out


def _ev(body, ns):
    """Run the block's 'name = expression' lines in order in a namespace with np and ns."""
    env = {"np": np, **ns}
    with np.errstate(all="ignore"):
        for k, v in _fields(body).items():
            env[k] = eval(v, {"__builtins__": {}}, env)  # the key's own expression
    return env


def _close(a, b, rtol=1e-8, atol=1e-10):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape and np.all(np.isfinite(a)) and np.allclose(a, b, rtol=rtol, atol=atol)


def _shape(s):
    assert re.fullmatch(r"\d+(x\d+)+", s), s
    return tuple(int(v) for v in s.split("x"))


def _lines(s):
    a, b = s.split("-")
    return set(range(int(a), int(b) + 1))


# ---- independent references (cached: the mutation test re-runs every check several times)
def _special_case_q(P, Q, T, Pi, sigma, M):
    """Q(psi|psi_t) of the special case by brute force: E over Z ~ R (one-hot rows) of the
    literal log of Eq. (2)'s product, Eq. (1) as printed."""
    N = len(P)
    total = 0.0
    for i in range(N):
        j = 0 if i < M else 1
        d2 = float(np.sum((P[i] + T - Q[j]) ** 2))
        total += math.log(Pi[i, j] * math.exp(-d2 / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma))
    return total


def check_hw5_Q1_d_ii(body):
    for N, M in ((7, 3), (7, 4), (6, 3)):
        rng = np.random.default_rng(N * 10 + M)
        P, Q = rng.normal(size=(N, 2)) * 2, rng.normal(size=(N, 2)) * 2
        Pi = np.full((N, N), 1.0 / N)
        opt = minimize(lambda t: -_special_case_q(P, Q, t, Pi, 0.7, M), np.zeros(2), method="BFGS",
                       options={"gtol": 1e-10})
        _close(_ev(body, dict(P=P, Q=Q, N=N, M=M))["T_new"], opt.x, atol=1e-5)


def _free_dimension(kind):
    """sympy: parameters (mu1, mu2, s11, s12, s22) of a 2-d Gaussian minus the rank of the
    constraints on the covariance."""
    import sympy

    m1, m2, a, b, c = sympy.symbols("m1 m2 a b c")
    cons = {"identity": [a - 1, b, c - 1], "diagonal": [b], "full": []}[kind]
    if not cons:
        return 5
    J = sympy.Matrix(cons).jacobian([m1, m2, a, b, c])
    return 5 - J.rank()


def check_hw5_Q2_a_identity(body):
    assert int(_fields(body)["outputs"]) == _free_dimension("identity")


def check_hw5_Q2_a_diagonal(body):
    assert int(_fields(body)["outputs"]) == _free_dimension("diagonal")


def check_hw5_Q2_b_ii(body):
    rng = np.random.default_rng(1)
    for y_gt in (0, 1):
        for scale in (0.1, 1.0, 5.0):
            w, x = rng.normal(size=5), rng.normal(size=5) * scale
            _close(_ev(body, dict(y_gt=y_gt, w=w, x=x))["KL"], direct_kl(y_gt, float(w @ x)),
                   rtol=1e-10)


# hw5 Q2(c)(i): the line numbers of models/vanilla_vae.py at commit a6896b9, transcribed from
# ../shared/assignments/README.md (the file itself is outside this repository)
VAE_LINES = {"encode": {89, 90}, "reparameterize": {115, 116, 117}, "forward": {120, 121}}


def check_hw5_Q2_c_i(body):
    f = _fields(body)
    assert set(f) == set(VAE_LINES)
    for name, lines in VAE_LINES.items():
        assert _lines(f[name]) == lines


def test_vae_line_transcription_matches_the_assignment_readme():
    readme = ROOT.parent / "shared" / "assignments" / "README.md"
    if not readme.exists():
        pytest.skip("../shared/assignments/README.md not present")
    text = readme.read_text()
    assert "the heads at 89-90" in text and "(115)" in text and "(117)" in text
    assert "lines 119-121: `forward`" in text


def check_hw5_Q2_c_iii(body):
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        mu = torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_()
        sigma = torch.rand(2, dtype=torch.float64, generator=gen).add(0.5).requires_grad_()
        v = torch.randn(2, dtype=torch.float64, generator=gen)
        g = torch.randn(2, dtype=torch.float64, generator=gen)
        (sigma * v + mu).backward(g)
        env = _ev(body, dict(g=g.numpy(), v=v.numpy(), mu=mu.detach().numpy(),
                             sigma=sigma.detach().numpy()))
        _close(env["dL_dmu"], mu.grad.numpy())
        _close([env["dL_dsigma1"], env["dL_dsigma2"]], sigma.grad.numpy())


def _mixture_case(seed=2, n=30, D=6, K=3):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, D)) < 0.4).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    return X, eta, rng.uniform(0.1, 0.9, size=(K, D)), n, K


def check_hw2_Q1_c_i(body):
    X, eta, p0, n, K = _mixture_case()
    pt = torch.tensor(p0, requires_grad=True)
    _q_torch(torch.tensor(X), torch.tensor(eta), torch.full((K,), 1.0 / K, dtype=torch.float64),
             pt).backward()
    env = _ev(body, dict(X=X, eta=eta, p=p0, n=n))
    _close(env["dQ_dp"], pt.grad.numpy())
    # the maximiser, numerically (L-BFGS-B on -Q over p in (0, 1))
    def negq(flat):
        p = flat.reshape(p0.shape)
        return -float(np.sum(eta.T @ X * np.log(p) + eta.T @ (1 - X) * np.log1p(-p)))
    opt = minimize(negq, np.full(p0.size, 0.5), method="L-BFGS-B",
                   bounds=[(1e-9, 1 - 1e-9)] * p0.size, options={"ftol": 1e-15, "gtol": 1e-10})
    _close(env["p_new"], opt.x.reshape(p0.shape), atol=1e-4)


def check_hw2_Q1_c_ii(body):
    X, eta, _, n, K = _mixture_case(seed=6, n=20)
    Nk = eta.sum(axis=0)
    cons = {"type": "eq", "fun": lambda q: np.sum(q) - 1}
    opt = minimize(lambda q: -float(np.sum(Nk * np.log(q))), np.full(K, 1.0 / K), method="SLSQP",
                   bounds=[(1e-9, 1)] * K, constraints=[cons], options={"ftol": 1e-14})
    env = _ev(body, dict(eta=eta, n=n))
    _close(env["pi_new"], opt.x, atol=1e-5)
    # the multiplier of L = Q + lam (sum pi - 1): dQ/dpi_k + lam = 0 at the maximiser (autograd)
    q = torch.tensor(env["pi_new"], requires_grad=True)
    torch.sum(torch.tensor(Nk) * torch.log(q)).backward()
    _close(q.grad.numpy() + env["lam"], np.zeros(K), atol=1e-8)


def check_hw2_Q2_b(body):
    f = _fields(body)
    assert set(re.findall(r"[A-Za-z_]\w*", f["form1"])) <= {"np", "exp", "u"}
    assert set(re.findall(r"[A-Za-z_]\w*", f["form2"])) <= {"sigma1"}
    u = torch.linspace(-20, 20, 401, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(u).sum().backward()
    s = torch.sigmoid(u).detach().numpy()
    env = _ev(body, dict(u=u.detach().numpy(), sigma1=s))
    _close(env["form1"], u.grad.numpy(), rtol=1e-9, atol=3e-16)
    _close(env["form2"], u.grad.numpy(), rtol=1e-9, atol=3e-16)


def _deep_check(body, out, wrt):
    """The derivative evaluated from the retained forward values only (no sigmoid available)."""
    f = _fields(body)
    retain = [r.strip() for r in f["retain"].split(",")]
    assert set(retain) <= {"u1", "h1", "u2", "h2"}
    w1, w2, w3, x = _random_points(n=200, seed=3)
    grads = dict(zip(("w1", "w2", "w3"), _autograd(w1, w2, w3, x)))
    h1 = sig(w1 * x)
    fwd = {"u1": w1 * x, "h1": h1, "u2": w2 * h1, "h2": sig(w2 * h1)}
    ns = {"w1": w1, "w2": w2, "w3": w3, "x": x, **{r: fwd[r] for r in retain}}
    env = {**ns}
    with np.errstate(all="ignore"):
        val = eval(f[out], {"__builtins__": {}}, env)
    _close(val, grads[wrt], rtol=1e-10, atol=1e-300)
    used = set(re.findall(r"[A-Za-z_]\w*", f[out])) & set(fwd)
    assert used == set(retain), "retain exactly what the formula needs"
    return f


def check_hw2_Q2_d(body):
    _deep_check(body, "df_dw3", "w3")


def check_hw2_Q2_e(body):
    _deep_check(body, "df_dw2", "w2")


def check_hw2_Q2_f(body):
    f = _deep_check(body, "df_dw1", "w1")
    # the order in which backward produces the gradients (autograd hooks on the leaves)
    order = []
    ws = {n: torch.tensor(v, requires_grad=True) for n, v in (("w1", 0.3), ("w2", -1.2), ("w3", 0.7))}
    for n, t in ws.items():
        t.register_hook(lambda g, n=n: order.append(n))
    (ws["w3"] * torch.sigmoid(ws["w2"] * torch.sigmoid(ws["w1"] * 1.5))).backward()
    assert [s.strip() for s in f["order"].split(",")] == order


def check_hw2_Q2_g(body):
    f = _fields(body)
    with torch.no_grad():
        y = torch.nn.Conv2d(1, 20, 5, stride=1, padding=0)(torch.zeros(1, 1, 28, 28))
        z = torch.nn.MaxPool2d(2)(y)
    assert _shape(f["conv"]) == (y.shape[2], y.shape[3], y.shape[1])
    assert _shape(f["pool"]) == (z.shape[2], z.shape[3], z.shape[1])


def check_hw2_Q2_h(body):
    f = _fields(body)
    x = torch.zeros(1, 20, 12, 12)
    exact = []
    with torch.no_grad():
        for F in range(1, 13):
            for S in range(1, 13):
                side = (12 - F) // S + 1
                if side == 8 and torch.nn.MaxPool2d(2)(torch.zeros(1, 1, side, side)).shape[-1] == 4:
                    exact.append((F, S))
        F = _shape(f["filter"])
        conv = torch.nn.Conv2d(int(f["in_channels"]), int(f["out_channels"]), F,
                               stride=int(f["stride"]))
        y = torch.nn.MaxPool2d(2)(conv(x))
    assert exact == [(5, 1)] and F == (5, 5) and int(f["stride"]) == 1
    assert y.shape == (1, 50, 4, 4) and 2 * y.shape[-1] == conv(x).shape[-1]


def _check_q3(body, widths):
    runs, _ = _seed0_summary()
    env = _ev(body, {})
    for name in ("final_train_error", "final_test_error"):
        assert sorted(env[name]) == list(widths)
        for C in widths:
            assert env[name][C] == pytest.approx(runs[C][name], abs=5e-5)


def check_hw2_Q3_c(body):
    _check_q3(body, (1, 2, 4))


def check_hw2_Q3_d(body):
    _check_q3(body, (64,))


def _verdict(body, expected, steps=None):
    """result (the final answer) and, where the check computes it, steps (the derivation)."""
    f = _fields(body)
    assert f["result"] == ("right" if expected else "wrong")
    if steps is not None:
        assert f.get("steps") == ("right" if steps else "wrong")
    else:
        assert "steps" not in f, "a steps verdict the check does not compute"


def check_hw2_sheet_Q1_A_iii(body):
    # the submitted last line (sum over d) against the mixture log-likelihood by literal loops
    _, X, pi, p = _small_mixture(0, n=6, D=5)
    ref = sum(math.log(sum(pi[k] * bern_pmf(x, p[k]) for k in range(len(pi)))) for x in X)
    _verdict(body, abs(submitted_a_iii_final(X, pi, p) - ref) < 1e-9)


def check_hw2_sheet_Q1_C_i(body):
    # result: the submitted p~ (= sum eta x / N_k) is the maximiser checked in hw2.Q1.c.i
    X, eta, _, _, _ = _mixture_case()
    sub = (eta.T @ X) / eta.sum(axis=0)[:, None]
    grad = eta.T @ X / sub - eta.T @ (1 - X) / (1 - sub)
    # steps: the submitted derivative sum eta [x/p + (1-x)/(1-p)] against autograd of Q
    p0 = np.random.default_rng(5).uniform(0.1, 0.9, size=sub.shape)
    pt = torch.tensor(p0, requires_grad=True)
    _q_torch(torch.tensor(X), torch.tensor(eta), torch.full((eta.shape[1],), 1.0 / eta.shape[1],
             dtype=torch.float64), pt).backward()
    deriv = eta.T @ X / p0 + eta.T @ (1 - X) / (1 - p0)
    _verdict(body, np.allclose(grad, 0, atol=1e-9), steps=np.allclose(deriv, pt.grad.numpy()))


def check_hw2_sheet_Q2_E(body):
    # the submitted formula, evaluated from the values it says it keeps (f, h2, 1 - h2, h1)
    w1, w2, w3, x = _random_points(seed=1)
    _, g2, _ = _autograd(w1, w2, w3, x)
    h1 = sig(w1 * x)
    h2 = sig(w2 * h1)
    kept = {"f": w3 * h2, "h2": h2, "one_minus_h2": 1 - h2, "h1": h1, "w3": w3}
    val = eval("w3 * h2 * one_minus_h2 * h1", {"__builtins__": {}}, kept)
    _verdict(body, np.allclose(val, g2, rtol=1e-10, atol=1e-300))


def check_hw2_sheet_Q2_G(body):
    conv = torch.nn.Conv2d(1, 20, 5)
    y = conv(torch.zeros(1, 1, 28, 28))
    z = torch.nn.MaxPool2d(2)(y)
    stated = (28 - 5 + 2 * 1) / 2 + 1  # the stated [(I - F + 2S)/2] + 1 with I = 28, F = 5, S = 1
    _verdict(body, tuple(y.shape[1:]) == (20, 24, 24) and tuple(z.shape[1:]) == (20, 12, 12),
             steps=stated == y.shape[-1])


def check_hw2_sheet_Q2_H(body):
    x = torch.zeros(1, 20, 12, 12)
    with torch.no_grad():  # the submitted F = 11, stride 1 (1/12 is not a stride)
        y = torch.nn.MaxPool2d(2)(torch.nn.Conv2d(20, 50, 11, stride=1)(x))
    _verdict(body, tuple(y.shape) == (1, 50, 4, 4))


def check_hw2_Q1_a_i(body):
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(0.05, 0.95, size=6)
        x = (rng.random(6) < 0.5).astype(float)
        _close(_ev(body, dict(x=x, q=q))["Px"], np.prod(stats.bernoulli.pmf(x, q)), rtol=1e-12)


def check_hw2_Q1_a_iii(body):
    for seed in range(3):
        _, X, pi, p = _small_mixture(seed, n=6, D=5)
        ref = sum(math.log(sum(pi[k] * math.prod(float(stats.bernoulli.pmf(xd, pkd))
                                                 for xd, pkd in zip(x, p[k]))
                               for k in range(len(pi)))) for x in X)
        _close(_ev(body, dict(X=X, pi=pi, p=p))["logL"], ref, rtol=1e-12)


def check_hw5_Q2_c_ii(body):
    """The change-of-variables density of V = sigma * v + mu equals N(mean, cov) (scipy)."""
    rng = np.random.default_rng(0)
    for mu, sigma in ((np.array([1.0, -3.0]), np.array([0.5, 2.0])),
                      (np.array([0.2, 0.7]), np.array([1.7, 0.3]))):
        U = rng.normal(size=(100, 2)) * 3
        dens = stats.multivariate_normal(np.zeros(2), np.eye(2)).pdf((U - mu) / sigma) / np.prod(sigma)
        env = _ev(body, dict(mu=mu, sigma=sigma))
        _close(stats.multivariate_normal(env["mean"], env["cov"]).pdf(U), dens, rtol=1e-10)


# ---- hw5 Q1 (general case): brute force over every matching Z (N^N one-hot row matrices)
def _reg_case(seed, N=4):
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
    T = rng.normal(size=2) * 0.5
    Pi = rng.dirichlet(np.ones(N), size=N)
    return rng, P, Q, T, Pi, 0.5 + rng.random()


def _eq1(p, q, T, sigma):
    """Eq. (1) as printed, for one pair of points, in Python floats."""
    d2 = (p[0] + T[0] - q[0]) ** 2 + (p[1] + T[1] - q[1]) ** 2
    return math.exp(-d2 / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)


def _literal_log_joint(P, Q, Z, T, Pi, sigma):
    """log of Eq. (2)'s product over i, j of (Pi_ij N_ij)^Z_ij, term by term."""
    N = len(P)
    return sum(Z[i, j] * math.log(Pi[i, j] * _eq1(P[i], Q[j], T, sigma))
               for i in range(N) for j in range(N) if Z[i, j])


def _all_matchings(N):
    """Every Z with one 1 per row, as an (N^N, N) array of column indices."""
    return np.array(list(itertools.product(range(N), repeat=N)))


def _posterior_over_z(P, Q, T, Pi, sigma):
    """(matchings, posterior) of Z given P, Q by Bayes over the whole joint (no per-row shortcut)."""
    N = len(P)
    W = np.array([[Pi[i, j] * _eq1(P[i], Q[j], T, sigma) for j in range(N)] for i in range(N)])
    idx = _all_matchings(N)
    joint = np.prod(W[np.arange(N), idx], axis=1)
    return idx, joint / joint.sum()


def _marginals(idx, post, N):
    return np.array([[post[idx[:, i] == j].sum() for j in range(N)] for i in range(N)])


def check_hw5_Q1_a_i(body):
    for seed in range(3):
        rng, P, Q, T, Pi, sigma = _reg_case(seed, N=5)
        for Z in (np.eye(5), np.eye(5)[rng.integers(0, 5, size=5)]):
            got = _ev(body, dict(P=P, Q=Q, Z=Z, T=T, Pi=Pi, sigma=sigma))["logP"]
            _close(got, _literal_log_joint(P, Q, Z, T, Pi, sigma), rtol=1e-12)


def check_hw5_Q1_a_ii(body):
    for seed in range(3):
        _, P, Q, T, Pi, sigma = _reg_case(seed, N=5)
        got = _ev(body, dict(P=P, Q=Q, T=T, Pi=Pi, sigma=sigma, N=5))["logP"]
        _close(got, _literal_log_joint(P, Q, np.eye(5), T, Pi, sigma), rtol=1e-12)


def check_hw5_Q1_b_i(body):
    for seed in range(3):
        _, P, Q, T, Pi, sigma = _reg_case(seed)
        idx, post = _posterior_over_z(P, Q, T, Pi, sigma)
        env = _ev(body, dict(P=P, Q=Q, T=T, Pi=Pi, sigma=sigma, N=len(P)))
        _close(env["R"], _marginals(idx, post, len(P)), rtol=1e-10, atol=1e-14)


def check_hw5_Q1_b_ii(body):
    """The special case: Pi^(t) puts all its mass on 'the first [N/2] points -> q1, the rest ->
    q2' (floor); the posterior by brute force at random T is R."""
    for N in (4, 5):
        _, P, Q, T, _, sigma = _reg_case(N, N=N)
        Pi = np.zeros((N, N))
        Pi[: N // 2, 0] = 1.0
        Pi[N // 2:, 1] = 1.0
        idx, post = _posterior_over_z(P, Q, T, Pi, sigma)
        _close(_ev(body, dict(N=N))["R"], _marginals(idx, post, N), atol=1e-12)


def check_hw5_Q1_c_i(body):
    """Q = E over Z ~ posterior(old parameters) of log P(P, Q, Z | new parameters), by
    enumeration of every Z; R is the posterior's marginal."""
    for seed in range(2):
        rng, P, Q, T, Pi, sigma = _reg_case(seed)
        N = len(P)
        idx, post = _posterior_over_z(P, Q, T, Pi, sigma)
        T_new, Pi_new = rng.normal(size=2), rng.dirichlet(np.ones(N), size=N)
        ref = sum(w * _literal_log_joint(P, Q, np.eye(N)[z], T_new, Pi_new, sigma)
                  for z, w in zip(idx, post))
        env = _ev(body, dict(P=P, Q=Q, R=_marginals(idx, post, N), T=T_new, Pi=Pi_new,
                             sigma=sigma, N=N))
        _close(env["Qpsi"], ref, rtol=1e-10)


def check_hw5_Q1_c_ii(body):
    for N, M in ((6, 3), (7, 3), (7, 4)):  # floor; for odd N also the ceil reading
        rng, P, Q, _, _, sigma = _reg_case(10 * N + M, N=N)
        for _ in range(3):
            T, Pi = rng.normal(size=2), rng.dirichlet(np.ones(N), size=N)
            env = _ev(body, dict(P=P, Q=Q, T=T, Pi=Pi, sigma=sigma, N=N, M=M))
            _close(env["Qpsi"], _special_case_q(P, Q, T, Pi, sigma, M), rtol=1e-12)


def check_hw5_Q1_d_i(body):
    """Maximise Q(T, Pi) = sum_ij R_ij log(Pi_ij N_ij) (torch's Normal for Eq. (1)) over T and
    over row-stochastic Pi (softmax of free logits) with BFGS."""
    rng, P, Q, _, _, sigma = _reg_case(5)
    N = len(P)
    R = rng.dirichlet(np.ones(N), size=N)
    Pt, Qt, Rt = (torch.tensor(a) for a in (P, Q, R))

    def negq(theta):
        th = torch.tensor(theta, requires_grad=True)
        T, Pi = th[:2], torch.softmax(th[2:].reshape(N, N), dim=1)
        dist = torch.linalg.vector_norm(Pt[:, None] + T - Qt[None], dim=2)
        logn = torch.distributions.Normal(0.0, sigma).log_prob(dist)  # Eq. (1) of the distance
        val = -torch.sum(Rt * (torch.log(Pi) + logn))
        val.backward()
        return val.item(), th.grad.numpy()

    opt = minimize(negq, np.zeros(2 + N * N), jac=True, method="BFGS", options={"gtol": 1e-10})
    env = _ev(body, dict(P=P, Q=Q, R=R, N=N))
    _close(env["T_new"], opt.x[:2], atol=1e-5)
    _close(env["Pi_new"], torch.softmax(torch.tensor(opt.x[2:]).reshape(N, N), dim=1).numpy(),
           atol=1e-5)


# ---- hw2 Q1: torch.distributions as the reference
def _tdist(pi, p):
    D = torch.distributions
    comp = D.Independent(D.Bernoulli(probs=torch.tensor(p)), 1)
    return D.Categorical(probs=torch.tensor(pi)), comp, D.MixtureSameFamily(
        D.Categorical(probs=torch.tensor(pi)), comp)


def check_hw2_Q1_a_ii(body):
    for seed in range(3):
        _, X, pi, p = _small_mixture(seed, n=4, D=5, K=3)
        _, _, mix = _tdist(pi, p)
        for x in X:
            ref = mix.log_prob(torch.tensor(x)).exp().item()
            _close(_ev(body, dict(x=x, pi=pi, p=p))["Px"], ref, rtol=1e-12)


def check_hw2_Q1_b_i(body):
    _, _, pi, p = _small_mixture(0)
    cat, _, _ = _tdist(pi, p)
    for k in range(len(pi)):
        ref = cat.log_prob(torch.tensor(k)).exp().item()
        _close(_ev(body, dict(pi=pi, z=np.eye(len(pi))[k]))["Pz"], ref, rtol=1e-12)


def check_hw2_Q1_b_ii(body):
    _, X, pi, p = _small_mixture(1)
    _, comp, _ = _tdist(pi, p)
    for x in X:
        lp = comp.log_prob(torch.tensor(x)).exp().numpy()  # P(x | p_k) for every k
        for k in range(len(pi)):
            got = _ev(body, dict(x=x, p=p, pi=pi, z=np.eye(len(pi))[k]))["Px_z"]
            _close(got, lp[k], rtol=1e-12)


def _joint_by_enumeration(X, pi, p):
    """(every Z as component indices, P(Z, D) for each) from torch's Categorical and Bernoulli."""
    cat, comp, _ = _tdist(pi, p)
    n, K = len(X), len(pi)
    lp = comp.log_prob(torch.tensor(X)[:, None]).numpy()  # (n, K): log P(x_i | p_k)
    lc = cat.log_prob(torch.arange(K)).numpy()
    idx = np.array(list(itertools.product(range(K), repeat=n)))
    return idx, np.exp(np.sum(lc[idx] + lp[np.arange(n), idx], axis=1))


def check_hw2_Q1_b_iii(body):
    for seed in range(2):
        _, X, pi, p = _small_mixture(seed, n=3, D=5, K=3)
        idx, joint = _joint_by_enumeration(X, pi, p)
        K = len(pi)
        got = [_ev(body, dict(X=X, pi=pi, p=p, Z=np.eye(K)[z]))["PZD"] for z in idx]
        _close(got, joint, rtol=1e-12)
        _, _, mix = _tdist(pi, p)  # and it marginalises to the mixture likelihood
        _close(np.sum(got), mix.log_prob(torch.tensor(X)).sum().exp().item(), rtol=1e-12)


def check_hw2_Q1_b_iv(body):
    for seed in range(2):
        _, X, pi, p = _small_mixture(seed, n=3, D=5, K=3)
        idx, joint = _joint_by_enumeration(X, pi, p)
        post = joint / joint.sum()
        ref = np.array([[post[idx[:, i] == k].sum() for k in range(len(pi))] for i in range(len(X))])
        _close(_ev(body, dict(X=X, pi=pi, p=p))["eta"], ref, rtol=1e-10)


def check_hw2_Q1_b_v(body):
    """E over the posterior of Z (old parameters) of log P(Z, D | new ones), by enumeration."""
    rng, X, pi, p = _small_mixture(1, n=4, D=5, K=3)
    pi_new, p_new = rng.dirichlet(np.ones(3)), rng.uniform(0.05, 0.95, size=p.shape)
    idx, joint = _joint_by_enumeration(X, pi, p)
    post = joint / joint.sum()
    _, joint_new = _joint_by_enumeration(X, pi_new, p_new)
    ref = float(post @ np.log(joint_new))
    eta = np.array([[post[idx[:, i] == k].sum() for k in range(3)] for i in range(len(X))])
    _close(_ev(body, dict(X=X, eta=eta, pi_new=pi_new, p_new=p_new))["EQ"], ref, rtol=1e-12)

# ---- hw2 Q2 (a), (c): the graph and the two passes, against torch's autograd graph of f
def _q2_leaves():
    return {n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
            for n, v in (("w1", 0.3), ("w2", -1.2), ("w3", 0.7), ("x", 1.5))}


class _LogOps(torch.overrides.TorchFunctionMode):
    """Records every tensor the forward evaluation computes, in the order it computes them."""

    def __init__(self):
        super().__init__()
        self.out = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        r = func(*args, **(kwargs or {}))
        if isinstance(r, torch.Tensor) and r.grad_fn is not None:
            self.out.append(r)
        return r


def _reference_f(leaves):
    """The assignment's f = w3 sigma2(w2 sigma1(w1 x)), and its intermediate tensors in order."""
    with _LogOps() as log:
        f = leaves["w3"] * torch.sigmoid(leaves["w2"] * torch.sigmoid(leaves["w1"] * leaves["x"]))
    return f, log.out


def _graph_sig(fn, names):
    """The autograd graph below fn as a string: op(children), leaves by name, children sorted
    (a product's operands have no order)."""
    if fn is None:
        return "const"
    if type(fn).__name__ == "AccumulateGrad":
        return names[id(fn.variable)]
    kids = sorted(_graph_sig(c, names) for c, _ in fn.next_functions)
    return f"{type(fn).__name__}({', '.join(kids)})"


def _q2_graph(body, leaves):
    env = _ev(body, {**leaves, "sigma1": torch.sigmoid, "sigma2": torch.sigmoid})
    return {k: env[k] for k in _fields(body)}


def check_hw2_Q2_a(body):
    leaves = _q2_leaves()
    names = {id(t): n for n, t in leaves.items()}
    nodes = _q2_graph(body, leaves)
    f_ref, inter = _reference_f(leaves)
    assert set(nodes) == {"u1", "h1", "u2", "h2", "f"}
    assert _graph_sig(nodes["f"].grad_fn, names) == _graph_sig(f_ref.grad_fn, names)
    # every named node is a node of f's graph (same subgraph, same value)
    ref_sigs = {_graph_sig(t.grad_fn, names) for t in inter}
    for n, t in nodes.items():
        assert _graph_sig(t.grad_fn, names) in ref_sigs, n
        assert any(torch.equal(t, r) for r in inter), n


def check_hw2_Q2_c(body):
    """forward: the order in which evaluating f computes the nodes; backward: the order in which
    autograd produces df/d(node) (tensor hooks). Nodes are named by the hw2.Q2.a block."""
    f = _fields(body)
    leaves = _q2_leaves()
    nodes = _q2_graph(_blocks()["hw2.Q2.a"][0][1], leaves)
    f_ref, inter = _reference_f(leaves)

    def name(t):
        [n] = [k for k, v in nodes.items() if torch.equal(v, t)]
        return n

    order = []
    for t in inter:
        t.register_hook(lambda g, n=name(t): order.append(n))
    f_ref.backward()
    assert [s.strip() for s in f["forward"].split(",")] == [name(t) for t in inter]
    assert [s.strip() for s in f["backward"].split(",")] == order


# ---- the submitted hw2 sheet: each submitted formula (transcribed from hw2.md here, as the
# student wrote it) evaluated against torch.distributions / autograd / the optimum
def check_hw2_sheet_Q1_A_i(body):
    _, X, pi, p = _small_mixture(0)
    _, comp, _ = _tdist(pi, p)
    sub = np.array([[np.prod(pk ** x * (1 - pk) ** (1 - x)) for pk in p] for x in X])
    _verdict(body, np.allclose(sub, comp.log_prob(torch.tensor(X)[:, None]).exp().numpy(),
                               rtol=1e-12))


def check_hw2_sheet_Q1_A_ii(body):
    _, X, pi, p = _small_mixture(1)
    _, _, mix = _tdist(pi, p)
    sub = [sum(pi[k] * np.prod(p[k] ** x * (1 - p[k]) ** (1 - x)) for k in range(len(pi)))
           for x in X]
    _verdict(body, np.allclose(sub, mix.log_prob(torch.tensor(X)).exp().numpy(), rtol=1e-12))


def check_hw2_sheet_Q1_B_i(body):
    _, _, pi, p = _small_mixture(2)
    cat, _, _ = _tdist(pi, p)
    K = len(pi)
    sub = [np.prod(pi ** np.eye(K)[k]) for k in range(K)]
    _verdict(body, np.allclose(sub, cat.log_prob(torch.arange(K)).exp().numpy(), rtol=1e-12))


def check_hw2_sheet_Q1_B_ii(body):
    _, X, pi, p = _small_mixture(3)
    _, comp, _ = _tdist(pi, p)
    K = len(pi)
    ref = comp.log_prob(torch.tensor(X)[:, None]).exp().numpy()  # P(x_i | z_i = e_k)
    first = np.array([[np.prod(pi ** np.eye(K)[k]) for k in range(K)] for _ in X])  # prod pi^z
    last = np.array([[np.prod([bern_pmf(x, p[j]) ** np.eye(K)[k][j] for j in range(K)])
                      for k in range(K)] for x in X])  # prod_k P(x | p_k)^z_k
    _verdict(body, np.allclose(last, ref, rtol=1e-12), steps=np.allclose(first, ref, rtol=1e-12))


def check_hw2_sheet_Q1_B_iii(body):
    _, X, pi, p = _small_mixture(0, n=3, D=5, K=3)
    idx, joint = _joint_by_enumeration(X, pi, p)
    K = len(pi)
    sub = [np.prod([np.prod([pi[k] ** Z[i, k] * bern_pmf(x, p[k]) ** Z[i, k] for k in range(K)])
                    for i, x in enumerate(X)]) for Z in (np.eye(K)[z] for z in idx)]
    _verdict(body, np.allclose(sub, joint, rtol=1e-12))


def check_hw2_sheet_Q1_B_iv(body):
    _, X, pi, p = _small_mixture(4, n=3, D=5, K=3)
    idx, joint = _joint_by_enumeration(X, pi, p)
    post = joint / joint.sum()
    K = len(pi)
    ref = np.array([[post[idx[:, i] == k].sum() for k in range(K)] for i in range(len(X))])
    sub = np.array([[pi[k] * np.prod(p[k] ** x * (1 - p[k]) ** (1 - x)) /
                     sum(pi[j] * np.prod(p[j] ** x * (1 - p[j]) ** (1 - x)) for j in range(K))
                     for k in range(K)] for x in X])
    _verdict(body, np.allclose(sub, ref, rtol=1e-10))


def check_hw2_sheet_Q1_B_v(body):
    rng, X, pi, p = _small_mixture(1, n=4, D=5, K=3)
    K = len(pi)
    pi_new, p_new = rng.dirichlet(np.ones(K)), rng.uniform(0.05, 0.95, size=p.shape)
    idx, joint = _joint_by_enumeration(X, pi, p)
    post = joint / joint.sum()
    _, joint_new = _joint_by_enumeration(X, pi_new, p_new)
    ref = float(post @ np.log(joint_new))
    eta = np.array([[post[idx[:, i] == k].sum() for k in range(K)] for i in range(len(X))])
    sub = sum(eta[i, k] * (math.log(pi_new[k]) + sum(
        x[d] * math.log(p_new[k, d]) + (1 - x[d]) * math.log(1 - p_new[k, d]) for d in range(5)))
        for i, x in enumerate(X) for k in range(K))
    # the first line, for a one-hot Z: [sum_i sum_k z log P(x_i | p_k)] + [sum_k z_k^i log pi_k]
    # with the pi term for one i only (no sum over i; read charitably for each possible i)
    Zs = [np.eye(K)[z] for z in idx]
    log_joint_new = np.log(joint_new)
    first_ok = any(all(math.isclose(
        sum(Z[i, k] * math.log(bern_pmf(x, p_new[k])) for i, x in enumerate(X) for k in range(K))
        + sum(Z[i0, k] * math.log(pi_new[k]) for k in range(K)), lj, rel_tol=1e-9)
        for Z, lj in zip(Zs, log_joint_new)) for i0 in range(len(X)))
    _verdict(body, math.isclose(sub, ref, rel_tol=1e-12), steps=first_ok)


def check_hw2_sheet_Q1_C_ii(body):
    rng = np.random.default_rng(6)
    n, K = 20, 3
    eta = rng.dirichlet(np.ones(K), size=n)
    Nk = eta.sum(axis=0)
    cons = {"type": "eq", "fun": lambda q: np.sum(q) - 1}
    opt = minimize(lambda q: -float(np.sum(Nk * np.log(q))), np.full(K, 1.0 / K), method="SLSQP",
                   bounds=[(1e-9, 1)] * K, constraints=[cons], options={"ftol": 1e-14})
    lam = Nk.sum()  # the submitted lambda = sum_k N_k, and pi_k = N_k / lambda
    sub = Nk / lam
    # its own stationarity condition N_k / pi_k + lambda = 0 at its own solution
    _verdict(body, np.allclose(sub, opt.x, atol=1e-5), steps=np.allclose(Nk / sub + lam, 0))


def check_hw2_sheet_Q2_B(body):
    u = torch.linspace(-20, 20, 401, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(u).sum().backward()
    un, s = u.detach().numpy(), torch.sigmoid(u).detach().numpy()
    forms = (np.exp(-un) / (1 + np.exp(-un)) ** 2, s * (1 - s))
    _verdict(body, all(np.allclose(v, u.grad.numpy(), rtol=1e-9, atol=3e-16) for v in forms))


def check_hw2_sheet_Q2_D(body):
    w1, w2, w3, x = _random_points(seed=1)
    _, _, g3 = _autograd(w1, w2, w3, x)
    _verdict(body, np.allclose(sig(w2 * sig(w1 * x)), g3, rtol=1e-12))


def check_hw2_sheet_Q2_F(body):
    w1, w2, w3, x = _random_points(seed=2)
    g1, g2, _ = _autograd(w1, w2, w3, x)
    s1 = sig(w1 * x)
    s2 = sig(w2 * s1)
    sub = w3 * s2 * (1 - s2) * w2 * s1 * (1 - s1) * x  # labelled df/dw2 on the sheet
    order = []  # "reverse order": the last layer's derivative first
    ws = {n: torch.tensor(v, requires_grad=True) for n, v in (("w1", 0.3), ("w2", -1.2), ("w3", 0.7))}
    for n, t in ws.items():
        t.register_hook(lambda g, n=n: order.append(n))
    (ws["w3"] * torch.sigmoid(ws["w2"] * torch.sigmoid(ws["w1"] * 1.5))).backward()
    right = np.allclose(sub, g1, rtol=1e-10, atol=1e-300) and order == ["w3", "w2", "w1"]
    _verdict(body, right, steps=np.allclose(sub, g2, rtol=1e-10, atol=1e-300))

# ---- code parts: the key's checkable claims against the handout's tables built from torch.nn
# layers here, and against the repository's modules (hw5.py, hw2_ResNet.py)
def _count(m):
    return sum(t.numel() for t in m.parameters())


def _table1():
    """hw5 Table 1 (the handout's spec) from torch.nn layers."""
    nn = torch.nn
    layers = []
    for i, o, pool in ((1, 16, 2), (16, 32, 2), (32, 64, 2), (64, 128, 4)):
        layers += [nn.Conv2d(i, o, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(pool, pool, 0)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128, 1), nn.Sigmoid(), nn.Flatten(0))


def _table2():
    nn = torch.nn
    layers = [nn.Unflatten(1, (128, 1, 1))]
    for i, o, s, p in ((128, 64, 1, 0), (64, 32, 2, 1), (32, 16, 2, 1), (16, 1, 2, 1)):
        layers += [nn.ConvTranspose2d(i, o, 4, s, p), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers[:-1], nn.Tanh())


def _check_net(body, spec, real, x, out_key, n, lo, hi):
    env = _ev(body, dict(N=n))
    assert int(env["params"]) == env["params"] == _count(spec) == _count(real)
    with torch.no_grad():
        for net in (spec, real):
            y = net(x)
            assert tuple(y.shape) == tuple(env[out_key])
            assert env["output_range"] == (lo, hi) and bool(((y > lo) & (y < hi)).all())


def check_hw5_Q3_a(body):
    import hw5

    torch.manual_seed(0)
    _check_net(body, _table1(), hw5.Discriminator(), torch.rand(3, 1, 32, 32) * 2 - 1,
               "output_shape", 3, 0, 1)


def check_hw5_Q3_b(body):
    import hw5

    torch.manual_seed(0)
    _check_net(body, _table2(), hw5.Generator(), torch.randn(3, 128), "output_shape", 3, -1, 1)


def check_hw5_Q3_c(body):
    """V from D's outputs, against hw5.GAN.calculate_V on the same D, G, x, z."""
    import hw5

    gan = hw5.GAN(device="cpu", seed=0, channels_last=False, verbose=False)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 32, 32, generator=gen) * 2 - 1
    z = torch.randn(7, 128, generator=gen)
    with torch.no_grad():
        d_real = gan.D(x).double().numpy()
        d_fake = gan.D(gan.G(z)).double().numpy()
        ref = gan.calculate_V(x, z).item()
    _close(_ev(body, dict(d_real=d_real, d_fake=d_fake))["V"], ref, rtol=1e-5)


def _spec_block(C):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(C, C, 3, 1, 1, bias=False), nn.BatchNorm2d(C), nn.ReLU(),
                         nn.Conv2d(C, C, 3, 1, 1, bias=False), nn.BatchNorm2d(C))


def check_hw2_Q3_a(body):
    import hw2_ResNet

    for C, (N, H, W) in ((1, (2, 5, 6)), (2, (3, 4, 7)), (4, (2, 6, 3)), (64, (2, 3, 5))):
        env = _ev(body, dict(C=C, N=N, H=H, W=W))
        real = hw2_ResNet.Block(C).eval()
        assert env["params"] == _count(_spec_block(C)) == _count(real), C
        with torch.no_grad():
            assert tuple(real(torch.randn(N, C, H, W)).shape) == tuple(env["output_shape"]), C


def check_hw2_Q3_b(body):
    import hw2_ResNet

    nn = torch.nn
    for C, N in ((1, 3), (2, 5), (4, 2), (64, 3)):
        env = _ev(body, dict(C=C, N=N))
        spec = nn.Sequential(nn.Conv2d(1, C, 3, 2, 1, bias=False), nn.BatchNorm2d(C), nn.ReLU(),
                             nn.MaxPool2d(2), _spec_block(C), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(C, 10))
        real = hw2_ResNet.ResNet(C).eval()
        assert env["params"] == _count(spec) == _count(real), C
        with torch.no_grad():
            assert tuple(real(torch.randn(N, 1, 8, 8)).shape) == tuple(env["logits_shape"]), C

def check_hw5_Q2_b_i(body):
    """The proof's chain -KL <= sum_S q - 1 <= 0 on random distributions (p zero on part of q's
    support), its middle step term by term, and equality at q = p."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.ones(8)) * (rng.random(8) < 0.6)
        p[0] = max(p[0], 0.1)
        p /= p.sum()
        q = rng.dirichlet(np.ones(8))
        bound = _ev(body, dict(p=p, q=q))["bound"]
        S = p > 0
        step = sum(p[i] * (q[i] / p[i] - 1) for i in range(8) if S[i])
        _close(bound, step, rtol=1e-12, atol=1e-15)
        assert -stats.entropy(p, q) <= bound + 1e-12 and bound <= 1e-12
        if not S.all():
            assert bound < -1e-9  # strict when q has mass off the support of p
        assert stats.entropy(p, p) == 0 and abs(_ev(body, dict(p=p, q=p))["bound"]) < 1e-12


def check_hw5_Q2_c_iv(body):
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor([1.5, 0.3], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([0.7, -2.0], dtype=torch.float64)
    dist = torch.distributions.Normal(mu, sigma)
    z = dist.sample()
    through_sample = None if not z.requires_grad else torch.autograd.grad(z, mu, g)[0]
    z = dist.rsample()
    v = ((z - mu) / sigma).detach()
    z.backward(g)
    env = _ev(body, dict(g=g.numpy(), v=v.numpy()))
    assert env["grad_through_sample"] is through_sample is None
    _close(env["dL_dmu"], mu.grad.numpy())
    _close(env["dL_dsigma"], sigma.grad.numpy())

CHECKS = {name[len("check_"):].replace("_", ".", 2).replace("_", "."): fn
          for name, fn in dict(globals()).items() if name.startswith("check_hw")}
# names like check_hw5_Q2_a_identity -> hw5.Q2.a.identity; hw2.sheet ids keep their dots
CHECKS = {re.sub(r"^(hw\d)\.(\w+)$", lambda m: m.group(1) + "." + m.group(2).replace("_", "."), k)
          .replace("Q1.A.iii", "Q1.A.iii"): fn for k, fn in CHECKS.items()}


def test_every_part_has_exactly_one_block():
    blocks = _blocks()
    assert len(PART_IDS) == len(set(PART_IDS)) == 62
    for pid in PART_IDS:
        assert len(blocks.get(pid, [])) == 1, f"{pid}: {len(blocks.get(pid, []))} blocks"
    assert set(blocks) == set(PART_IDS), set(blocks) ^ set(PART_IDS)
    # a block is checked by a test exactly when it is not marked unchecked
    for pid, [(unchecked, body)] in blocks.items():
        assert unchecked == (pid not in CHECKS), pid
        if unchecked:
            assert body.strip(), f"{pid}: an unchecked block must say why"
        if pid.startswith("hw2.sheet."):
            assert re.search(r"^result = (right|wrong|incomplete|missing|ungraded)$", body,
                             re.M), pid
    assert set(CHECKS) <= set(PART_IDS)


@pytest.mark.parametrize("pid", sorted(CHECKS))
def test_block_against_an_independent_computation(pid):
    [(unchecked, body)] = _blocks()[pid]
    CHECKS[pid](body)


def _mutants(body, pid):
    """(what, mutated body) for: flip the first sign, perturb the first number, swap the first
    and the last distinct input names, flip a verdict."""
    out = []
    f = _fields(body)
    head = body.rstrip("\n").split("\n")
    if "result" in f:
        new = {"right": "wrong", "wrong": "right"}[f["result"]]
        out.append(("flip verdict", body.replace(f"result = {f['result']}", f"result = {new}")))
        if "steps" in f:
            new = {"right": "wrong", "wrong": "right"}[f["steps"]]
            out.append(("flip steps", body.replace(f"steps = {f['steps']}", f"steps = {new}")))
        return out
    for i, line in enumerate(head):
        k, _, v = line.partition(" = ")
        if re.search(r"\d+-\d+$", v) or re.fullmatch(r"\d+(x\d+)+", v):
            continue
        s = re.search(r"[+-]", v)
        if s:
            nv = v[:s.start()] + {"+": "-", "-": "+"}[s.group()] + v[s.end():]
            out.append(("flip sign", "\n".join(head[:i] + [f"{k} = {nv}"] + head[i + 1:])))
            break
    else:
        for i, line in enumerate(head):
            k, _, v = line.partition(" = ")
            if v and not re.search(r"\d+-\d+$", v) and not re.fullmatch(r"\d+(x\d+)+", v) \
                    and k not in ("retain", "order"):
                out.append(("negate", "\n".join(head[:i] + [f"{k} = -({v})"] + head[i + 1:])))
                break
    n = re.search(r"(?<![\w.])\d+(\.\d+)?", "\n".join(line.partition(" = ")[2] for line in head))
    if n:
        # locate it in the body (after the first ' = ' of its line)
        for i, line in enumerate(head):
            k, _, v = line.partition(" = ")
            nm = re.search(r"(?<![\w.])\d+(\.\d+)?", v)
            if nm:
                old = nm.group()
                new = str(int(old) + 1) if "." not in old else f"{float(old) + 0.01:.4f}"
                nv = v[:nm.start()] + new + v[nm.end():]
                out.append(("perturb number", "\n".join(head[:i] + [f"{k} = {nv}"] + head[i + 1:])))
                break
    names = [t for t in re.findall(r"(?<![\w.])[A-Za-z_]\w*", " ".join(
        line.partition(" = ")[2] for line in head)) if t not in ("np", "axis", "None", "keepdims",
                                                                "True", "exp", "sum", "log", "T")]
    inputs = [t for t in dict.fromkeys(names) if t not in f]
    if len(inputs) >= 2:
        a, b = inputs[0], inputs[-1]
        sw = re.sub(rf"(?<![\w.])({a}|{b})(?!\w)", lambda m: b if m.group(1) == a else a,
                    "\n".join(line.partition(" = ")[2] for line in head))
        new_lines = [f"{line.partition(' = ')[0]} = {v}" if " = " in line else line
                     for line, v in zip(head, sw.split("\n"))]
        out.append((f"swap {a}/{b}", "\n".join(new_lines)))
    return out


def test_every_computable_block_catches_its_mutants():
    blocks = _blocks()
    survived, total = [], 0
    for pid in sorted(CHECKS):
        [(_, body)] = blocks[pid]
        muts = _mutants(body, pid)
        assert muts, f"{pid}: no mutant could be made"
        for what, mutated in muts:
            assert mutated != body, (pid, what)
            total += 1
            for line in mutated.splitlines():
                if " = " in line:
                    compile(line.partition(" = ")[0].strip() or "x", "<key>", "eval")
            try:
                CHECKS[pid](mutated)
            except SyntaxError:
                raise
            except Exception:
                continue
            survived.append((pid, what, mutated))
    assert not survived, survived
    assert total >= 2 * len(CHECKS)


def test_prose_and_blocks_state_the_same_numbers_and_shapes():
    """Wherever the prose above a block states a shape, a count or line numbers, they match."""
    text = KEY.read_text()
    blocks = {pid: body for pid, [(u, body)] in _blocks().items()}

    def section(pid):
        end = text.index(f"```answer {pid}")
        start = text.rfind("\n#### ", 0, end)
        return text[start:end]

    for pid, key in (("hw2.Q2.g", "conv"), ("hw2.Q2.g", "pool")):
        s = _shape(_fields(blocks[pid])[key])
        assert f"{s[0]} \\times {s[1]} \\times {s[2]}" in section(pid)
    h = _fields(blocks["hw2.Q2.h"])
    F = _shape(h["filter"])
    assert (f"filter ${F[0]} \\times {F[1]}$, stride {h['stride']}, {h['in_channels']} input "
            f"channels, {h['out_channels']} output channels") in section("hw2.Q2.h")
    a = section("hw5.Q2.a.identity")
    assert f"Identity covariance: **{_fields(blocks['hw5.Q2.a.identity'])['outputs']}**" in a
    assert f"Diagonal covariance: **{_fields(blocks['hw5.Q2.a.diagonal'])['outputs']}**" in a
    c = section("hw5.Q2.c.i")
    for name, lines in _fields(blocks["hw5.Q2.c.i"]).items():
        assert f"**`{name}`, lines {lines}**" in c, name
    # the GAN's parameter counts and the ResNet's parameter formula
    gan = text[text.index("### Q3. GAN"):text.index("```answer hw5.Q3.a")]
    for pid in ("hw5.Q3.a", "hw5.Q3.b"):
        assert f"**{int(_fields(blocks[pid])['params']):,}**" in gan, pid
    res = text[text.rindex("\n\n", 0, text.index("```answer hw2.Q3.a") - 2):text.index("```answer hw2.Q3.a")]
    polys = re.findall(r"has\s+\$(\d+C\^2(?: \+ \d+C)?(?: \+ \d+)?)\$ parameters", res)
    assert len(polys) == 2
    for pid, poly in zip(("hw2.Q3.a", "hw2.Q3.b"), polys):
        expr = re.sub(r"(\d+)C\b", r"\1 * C", re.sub(r"(\d+)C\^2", r"\1 * C * C", poly))
        for C in (1, 3, 64):
            prose = eval(expr, {"__builtins__": {}}, {"C": C})
            assert _ev(blocks[pid], dict(C=C, N=1, H=1, W=1))["params"] == prose, (pid, C)
    # the Q3 table and the Q3 blocks
    table = _table(text)
    for pid, widths in (("hw2.Q3.c", (1, 2, 4)), ("hw2.Q3.d", (64,))):
        env = _ev(blocks[pid], {})
        for C in widths:
            assert table[C][0] == env["final_train_error"][C]
            assert table[C][1] == env["final_test_error"][C]


# docs/rubric.md is checked in test_rubric.py.
