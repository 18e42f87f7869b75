"""The CNN's fused conv + pool (one matmul, a hand-written gradient) is the textbook conv -> ReLU -> max-pool."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scenarios import models


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
