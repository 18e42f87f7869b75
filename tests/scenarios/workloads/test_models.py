"""The CNN's fused conv + pool (one matmul, a hand-written gradient) is the textbook conv -> ReLU -> max-pool."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scenarios.workloads import models


def textbook_cnn(params, x):
    """conv 3x3 SAME + bias, ReLU, 2x2 max-pool, twice; dense + ReLU; classifier."""
    y = x
    for name in ("conv1", "conv2"):
        y = jax.nn.relu(models._conv_apply(params[name], y))
        y = models._max_pool(y)
    y = jax.nn.relu(y.reshape(y.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"])
    return y @ params["out"]["w"] + params["out"]["b"]


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("inputs", ["random", "zeros"])  # zeros: every pooling window ties
def test_fused_cnn_equals_the_textbook_definition(shape, inputs):
    model = models.make_model("cnn", shape, 10)
    params = model.init(jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map_with_path(lambda p, a: a + 0.05 if "b" in str(p[-1]) else a, params)
    x = jnp.asarray(np.random.default_rng(1).random((8, *shape), np.float32)) if inputs == "random" \
        else jnp.zeros((8, *shape))
    y = jnp.arange(8) % 10
    np.testing.assert_allclose(model.apply(params, x), textbook_cnn(params, x), rtol=1e-5, atol=1e-5)

    def loss(apply):
        return lambda p: optax.softmax_cross_entropy_with_integer_labels(apply(p, x), y).mean()
    for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(model.apply))(params)),
                    jax.tree_util.tree_leaves(jax.grad(loss(textbook_cnn))(params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    gx = jax.grad(lambda x: model.apply(params, x).sum())(x)
    gx_ref = jax.grad(lambda x: textbook_cnn(params, x).sum())(x)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-6)


def test_cnn_replay_scan_equals_loop_bit_for_bit():
    """``mode="auto"`` runs the CNN as a compiled loop: the same numbers as one call per op."""
    from algorithms import Problem, gsgm, replay
    from scenarios.experiments.config import ExperimentConfig as Config
    from scenarios.experiments.execute import resolve_mode
    from sim import ClusterSpec, ComputeModel, simulate

    model = models.make_model("cnn", (8, 8, 1), 10)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((64, 8, 8, 1), np.float32))
    y = jnp.asarray(np.arange(64) % 10)

    def loss_fn(params, batch):
        xb, yb = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, xb), yb).mean()

    def batch_fn(data, seed, worker, step):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), worker), step)
        idx = jax.random.randint(key, (8,), 0, 64)
        return data[0][idx], data[1][idx]

    def eval_fn(params):
        return {"loss": loss_fn(params, (x, y)), "accuracy": jnp.mean(jnp.argmax(model.apply(params, x), -1) == y)}

    trace = simulate(ClusterSpec(num_workers=3, compute=ComputeModel("exponential")), "whitelist-wait", 40, seed=0)
    problem = Problem(loss_fn, batch_fn, eval_fn, (x, y), model.init(jax.random.PRNGKey(0)))
    rule = gsgm(0.05, momentum=0.9, k=2)
    loop, scan = (replay(trace, rule, problem, eval_every=10, mode=m, keep_params=True) for m in ("loop", "scan"))
    np.testing.assert_array_equal(loop.loss, scan.loss)
    for a, b in zip(jax.tree_util.tree_leaves(loop.params), jax.tree_util.tree_leaves(scan.params)):
        np.testing.assert_array_equal(a, b)
    assert resolve_mode(Config(model="cnn")) == "scan" and resolve_mode(Config(model="resnet")) == "loop"
