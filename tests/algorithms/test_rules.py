"""Server rules on tiny hand-built inputs with hand-computed (golden) results."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms import (ALGORITHMS, RuleError, asgd, buffered, dcasgd, gsgm, hinge, inverse, make_rule, polynomial,
                        ssgd, staleness_aware_asgd)
from scenarios.testing import check_rule

W = jnp.array([1.0, 2.0, 3.0])
W_BAK = jnp.array([0.5, 2.0, 4.0])
G = jnp.array([1.0, -2.0, 0.5])


def step(rule, state, params, grad, worker=0, staleness=0, backup=None):
    return rule.update(state, params, grad, worker=worker, staleness=staleness,
                       backup=params if backup is None else backup)


def test_asgd_is_sgd():
    rule = asgd(0.1)
    params, _ = step(rule, rule.init(W, 2), W, G)
    np.testing.assert_array_equal(params, W - 0.1 * G)


def test_asgd_server_momentum():
    rule = asgd(0.1, momentum=0.9, optimizer_state="server")
    state = rule.init(W, 2)
    p1, state = step(rule, state, W, G)
    p2, state = step(rule, state, p1, G, worker=1)
    # u1 = g, u2 = 0.9 g + g
    np.testing.assert_allclose(p2, W - 0.1 * G - 0.1 * 1.9 * G, rtol=1e-6)


def test_asgd_per_worker_momentum_keeps_one_state_per_worker():
    rule = asgd(0.1, momentum=0.9, optimizer_state="worker")
    state = rule.init(W, 2)
    p1, state = step(rule, state, W, G, worker=0)
    p2, state = step(rule, state, p1, G, worker=1)  # worker 1's momentum is fresh: u = g
    np.testing.assert_allclose(p2, W - 0.2 * G, rtol=1e-6)
    p3, state = step(rule, state, p2, G, worker=0)  # worker 0's: u = 0.9 g + g
    np.testing.assert_allclose(p3, W - 0.2 * G - 0.19 * G, rtol=1e-6)


def test_dcasgd_constant_hand_computed():
    rule = dcasgd(0.1, lam=0.04, adaptive=False)
    params, _ = step(rule, rule.init(W, 1), W, G, backup=W_BAK)
    # g~ = g + 0.04 g^2 (w - w_bak) = [1.02, -2, 0.49]
    np.testing.assert_allclose(params, [1 - 0.102, 2.2, 3 - 0.049], rtol=1e-6)


def _dca_oracle(ms, g, w, wb, lam0=2.0, m=0.95, eps=1e-7, lr=0.1):
    ms = m * ms + (1 - m) * g * g
    lam = lam0 / np.sqrt(ms + eps)
    return w - lr * (g + lam * g * g * (w - wb)), ms


def test_dcasgd_adaptive_hand_computed_global_and_per_worker():
    g, w, wb = (np.asarray(a, np.float64) for a in (G, W, W_BAK))
    g2 = np.array([0.5, 1.0, -1.0])
    for per_worker in (False, True):
        rule = dcasgd(0.1, lam=2.0, adaptive=True, per_worker_ms=per_worker)
        state = rule.init(W, 2)
        p1, state = step(rule, state, W, G, worker=0, backup=W_BAK)
        exp1, ms = _dca_oracle(np.zeros(3), g, w, wb)
        np.testing.assert_allclose(p1, exp1, rtol=1e-5)
        p2, state = step(rule, state, p1, jnp.asarray(g2, jnp.float32), worker=1, backup=W)
        # per worker: worker 1's mean square starts at zero; global: it carries worker 0's
        exp2, _ = _dca_oracle(np.zeros(3) if per_worker else ms, g2, exp1, w)
        np.testing.assert_allclose(p2, exp2, rtol=1e-5)


def test_dcasgd_adaptive_divides_lam0_afresh_each_step():
    rule = dcasgd(1.0, lam=2.0, adaptive=True)
    state = rule.init(W, 1)
    params = W
    ms = np.zeros(3)
    w = np.asarray(W, np.float64)
    for _ in range(3):
        params, state = step(rule, state, params, G, backup=W_BAK)
        w, ms = _dca_oracle(ms, np.asarray(G, np.float64), w, np.asarray(W_BAK, np.float64), lr=1.0)
    np.testing.assert_allclose(params, w, rtol=1e-5)


def test_dcasgd_bias_correction_hand_computed():
    """With bias correction the mean square is divided by 1 - m^t: after the first update it is
    exactly g^2, so lam = lam0 / sqrt(g^2 + eps); after the second (1 - m^2)."""
    g, w, wb = (np.asarray(a, np.float64) for a in (G, W, W_BAK))
    for per_worker in (False, True):
        rule = dcasgd(0.1, lam=2.0, adaptive=True, per_worker_ms=per_worker, bias_correction=True)
        state = rule.init(W, 1)
        p1, state = step(rule, state, W, G, backup=W_BAK)
        lam = 2.0 / np.sqrt(g * g + 1e-7)
        np.testing.assert_allclose(p1, w - 0.1 * (g + lam * g * g * (w - wb)), rtol=1e-5)
        p2, state = step(rule, state, p1, G, backup=W_BAK)
        ms = 0.95 * 0.05 * g * g + 0.05 * g * g
        lam = 2.0 / np.sqrt(ms / (1 - 0.95 ** 2) + 1e-7)
        expected = np.asarray(p1, np.float64) - 0.1 * (g + lam * g * g * (np.asarray(p1, np.float64) - wb))
        np.testing.assert_allclose(p2, expected, rtol=1e-5)


@pytest.mark.parametrize("adaptive", [False, True])
def test_dcasgd_without_staleness_is_asgd(adaptive):
    dc, plain = dcasgd(0.1, adaptive=adaptive), asgd(0.1)
    a, _ = step(dc, dc.init(W, 1), W, G, backup=W)
    b, _ = step(plain, plain.init(W, 1), W, G)
    np.testing.assert_array_equal(a, b)


def test_gsgm_k1_without_momentum_is_asgd():
    rule, plain = gsgm(0.1, momentum=0, k=1), asgd(0.1)
    s1, s2 = rule.init(W, 3), plain.init(W, 3)
    p1 = p2 = W
    rng = np.random.default_rng(0)
    for t in range(6):
        g = jnp.asarray(rng.normal(size=3), jnp.float32)
        p1, s1 = step(rule, s1, p1, g, worker=t % 3)
        p2, s2 = step(plain, s2, p2, g, worker=t % 3)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("k, expected", [
    # workers 0, 1, 0, 2, 1 push gradients a, b, c, d, e
    (3, ["a", "(a+b)/2", "(c+b)/2", "(c+b+d)/3", "(c+e+d)/3"]),
    (2, ["a", "(a+b)/2", "(c+b)/2", "(c+d)/2", "(d+e)/2"]),
])
def test_gsgm_partial_average_hand_computed(k, expected):
    grads = {n: jnp.asarray(v, jnp.float32) for n, v in
             zip("abcde", ([1., 0, 0], [0, 2., 0], [0, 0, 4.], [8., 8, 8], [16., 0, 16]))}
    rule = gsgm(1.0, momentum=0, k=k)
    state = rule.init(jnp.zeros(3), 3)
    params = jnp.zeros(3)
    for (name, worker), formula in zip(zip("abcde", [0, 1, 0, 2, 1]), expected):
        new, state = step(rule, state, params, grads[name], worker=worker)
        direction = eval(formula, {}, grads)
        np.testing.assert_allclose(params - new, direction, rtol=1e-6)
        params = new


def test_gsgm_global_momentum():
    # v1 = g, v2 = 0.5 g + g; each step is lr (1 - beta) v, so SGD's step size is kept
    rule = gsgm(0.1, momentum=0.5, k=1)
    state = rule.init(W, 2)
    p1, state = step(rule, state, W, G, worker=0)
    p2, state = step(rule, state, p1, G, worker=1)
    np.testing.assert_allclose(p2, W - 0.05 * G - 0.05 * 1.5 * G, rtol=1e-6)


def test_gsgm_defaults_are_the_experiments():
    """The library's defaults are the table's: beta = 0.9 with lr (1 - beta), k = ceil(N / 2)."""
    rule = gsgm(0.1)
    state = rule.init(W, 5)
    assert state.latest_gradients.shape[0] == 5  # k = 3 > 1: the window is kept
    p1, _ = step(rule, state, W, G, worker=0)
    np.testing.assert_allclose(p1, W - 0.1 * (1 - 0.9) * G, rtol=1e-6)
    from algorithms.gsgm import window_size
    assert [window_size("half", n) for n in (1, 2, 5, 10, 30)] == [1, 1, 3, 5, 15]
    assert window_size("all", 7) == 7 and window_size(4, 7) == 4


def test_gsgm_on_adam_uses_adams_moment_as_global_momentum():
    rule = gsgm(base=optax.adam(0.01), k=1)
    plain = asgd(base=optax.adam(0.01))
    a, _ = step(rule, rule.init(W, 2), W, G)
    b, _ = step(plain, plain.init(W, 2), W, G)
    np.testing.assert_array_equal(a, b)


def test_ssgd_steps_on_the_mean_of_one_gradient_per_worker():
    rule = ssgd(0.5)
    state = rule.init(W, 3)
    grads = [G, 2 * G, jnp.array([3.0, 0.0, 0.0])]
    params = W
    for w, g in enumerate(grads[:2]):
        params, state = step(rule, state, params, g, worker=w)
        np.testing.assert_array_equal(params, W)  # nothing until the third
    params, state = step(rule, state, params, grads[2], worker=2)
    np.testing.assert_allclose(params, W - 0.5 * (G + 2 * G + grads[2]) / 3, rtol=1e-6)
    assert int(state.count) == 0


def test_buffered_weights_and_divides_by_k():
    rule = buffered(1.0, buffer_size=2, weight=polynomial(0.5))
    state = rule.init(W, 4)
    params, state = step(rule, state, W, G, staleness=3)  # weight 1/2
    params, state = step(rule, state, params, G, staleness=0)  # weight 1
    np.testing.assert_allclose(params, W - (0.5 * G + G) / 2, rtol=1e-6)


def test_staleness_weights():
    assert float(polynomial(0.5)(3)) == pytest.approx(0.5)
    assert float(hinge(10.0, 4.0)(4)) == 1.0
    assert float(hinge(10.0, 4.0)(6)) == pytest.approx(1 / 21)
    assert float(inverse()(0)) == 1.0 and float(inverse()(4)) == 0.25


def test_staleness_aware_asgd_scales_by_one_over_tau():
    rule = staleness_aware_asgd(0.4)
    p, _ = step(rule, rule.init(W, 2), W, G, staleness=4)
    np.testing.assert_allclose(p, W - 0.1 * G, rtol=1e-6)


def test_bad_arguments_name_the_field():
    with pytest.raises(RuleError, match="learning_rate"):
        asgd(-0.1)
    with pytest.raises(RuleError, match="learning_rate"):
        asgd(float("nan"))
    with pytest.raises(RuleError, match="momentum"):
        asgd(0.1, momentum=1.5)
    with pytest.raises(RuleError, match="lam"):
        dcasgd(0.1, lam=-1.0)
    with pytest.raises(RuleError, match="k: "):
        gsgm(0.1, k=0)
    with pytest.raises(RuleError, match="k: "):
        gsgm(0.1, k=5).init(W, 3)
    with pytest.raises(RuleError, match="base"):
        gsgm(0.1, base=optax.adam(0.1))
    with pytest.raises(RuleError, match="momentum"):
        gsgm(momentum=0.9, base=optax.adam(0.1))
    with pytest.raises(RuleError, match="optimizer_state"):
        asgd(0.1, optimizer_state="global")
    with pytest.raises(RuleError, match="algorithm"):
        make_rule("hogwild", optax.sgd(0.1))


# ------------------------------------------------------------ conformance battery
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_conformance(name):
    """The testing kit's battery (scenarios.testing.PROPERTIES) on every registered rule,
    on SGD, momentum SGD and Adam, with the policy the registry declares for it."""
    check_rule(name)
