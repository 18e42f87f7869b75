"""Models as pairs of pure functions: ``init(key) -> params`` and ``apply(params, x) -> logits``.

- ``mlp``: flatten, dense layers with ReLU.
- ``cnn``: two 3x3 conv layers (8, 16 channels) each with ReLU and 2x2 max-pool,
  then a dense layer of 64 and the classifier (a small CNN sized for a 2-core CPU).
- ``resnet``: a small ResNet for CIFAR (ResNet-8: a stem and three stages of one basic
  block, 16/32/64 channels, no batch norm: the residual branch's last conv starts at
  zero, so each block starts as the identity).
Weights: He-normal, biases zero, from the seed.

How the CNN is computed (the function is the same as ``conv -> +bias -> ReLU -> max-pool``;
see benchmarks/README.md, "CNN on XLA's CPU backend", for the measurements): XLA's CPU
convolutions are slow for these small layers (a 1-channel input, 8 and 16 filters),
above all their weight gradients, which it computes after transposing activations, and
the gradient of ``reduce_window`` max-pooling is a slow scatter. Each "3x3 conv, bias,
2x2 max-pool" is therefore one matrix product: every 2x2 pooling window needs the 4x4
input patch around it, and a [16 C, 4 O] matrix holds the kernel at the window's 4
positions (``_pool_patches``, ``_pool_kernel``), so the product gives the 4 conv outputs
of each window, and the pool is a max over them. Max and ReLU commute with each other
and with adding the bias (all are monotone), so the bias is added and ReLU applied after
pooling, on a quarter of the values: the same numbers. Its gradient is written by hand
(``jax.custom_vjp``): the whole gradient goes to the first maximum of each window in
row-major order, as for ``reduce_window``'s gradient, and the weight and input gradients
are two more matrix products.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

MODELS = ("mlp", "cnn", "resnet")


class Model(NamedTuple):
    name: str
    init: Callable  # key -> params
    apply: Callable  # (params, x [B, ...] float32) -> logits [B, classes]


def _dense(key, n_in, n_out):
    return {"w": jax.random.normal(key, (n_in, n_out)) * math.sqrt(2.0 / n_in), "b": jnp.zeros((n_out,))}


def _conv(key, k, c_in, c_out, scale=1.0):
    return {"w": jax.random.normal(key, (k, k, c_in, c_out)) * math.sqrt(2.0 / (k * k * c_in)) * scale,
            "b": jnp.zeros((c_out,))}


def _conv_apply(p, x, stride=1):
    y = jax.lax.conv_general_dilated(x, p["w"], (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["b"]


def _max_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _pool_patches(x):
    """[B, H, W, C] -> [B, H/2, W/2, 16 C]: the 4x4 input patch (zero-padded by 1, as a
    3x3 "SAME" conv) under each 2x2 pooling window, in (row, column, channel) order."""
    _, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return jnp.concatenate([xp[:, r:r + h:2, s:s + w:2, :] for r in range(4) for s in range(4)], axis=-1)


def _pool_kernel(w):
    """[3, 3, C, O] -> [16 C, 4 O]: the kernel placed at each position (di, dj) of a 2x2
    window inside its 4x4 patch, so that ``patch @ kernel`` gives the window's 4 conv
    outputs, ordered (di, dj, out channel)."""
    c, o = w.shape[2], w.shape[3]
    placed = [jnp.pad(w, ((di, 1 - di), (dj, 1 - dj), (0, 0), (0, 0))) for di in range(2) for dj in range(2)]
    return jnp.stack(placed, axis=3).reshape(16 * c, 4 * o)


def _first_max(z, m):
    """One-hot over axis 1 (the 4 positions of a window) of the first position equal to ``m``."""
    first, seen = [], jnp.zeros(m.shape, bool)
    for k in range(z.shape[1]):
        hit = (z[:, k] == m) & ~seen
        first.append(hit)
        seen = seen | hit
    return jnp.stack(first, axis=1)


@jax.custom_vjp
def _conv_pool(w, b, x):
    """``max_pool(conv3x3_same(x, w) + b)`` for even H and W, as one matrix product."""
    return _conv_pool_fwd(w, b, x)[0]


def _conv_pool_fwd(w, b, x):
    n, h, wd, c = x.shape
    o = w.shape[-1]
    patches = _pool_patches(x).reshape(-1, 16 * c)
    z = (patches @ _pool_kernel(w)).reshape(-1, 4, o)  # the 4 conv outputs of each window
    m = z.max(axis=1)
    return (m + b).reshape(n, h // 2, wd // 2, o), (patches, z, m, w, x)


def _conv_pool_bwd(res, g):
    patches, z, m, w, x = res
    o = w.shape[-1]
    g = g.reshape(-1, o)
    dz = jnp.where(_first_max(z, m), g[:, None, :], 0.0).reshape(-1, 4 * o)
    dw = jax.vjp(_pool_kernel, w)[1](patches.T @ dz)[0]
    dpatches = (dz @ _pool_kernel(w).T).reshape(x.shape[0], x.shape[1] // 2, x.shape[2] // 2, -1)
    dx = jax.vjp(_pool_patches, x)[1](dpatches)[0]  # dropped by XLA when x is data
    return dw, g.sum(axis=0), dx


_conv_pool.defvjp(_conv_pool_fwd, _conv_pool_bwd)


def _conv_relu_pool(p, x):
    """``max_pool(relu(conv3x3_same(x) + b))``; odd sizes take the plain path (the pool drops the last row/column)."""
    if x.shape[1] % 2 or x.shape[2] % 2:
        return _max_pool(jax.nn.relu(_conv_apply(p, x)))
    return jax.nn.relu(_conv_pool(p["w"], p["b"], x))


def mlp(input_shape, num_classes, hidden=(200,)) -> Model:
    sizes = [math.prod(input_shape), *hidden, num_classes]

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def apply(params, x):
        h = x.reshape(x.shape[0], -1)
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        return h @ params[-1]["w"] + params[-1]["b"]

    return Model("mlp", init, apply)


def cnn(input_shape, num_classes, channels=(8, 16), hidden=64) -> Model:
    h, w, c = input_shape
    flat = (h // 4) * (w // 4) * channels[1]

    def init(key):
        k = jax.random.split(key, 4)
        return {"conv1": _conv(k[0], 3, c, channels[0]), "conv2": _conv(k[1], 3, channels[0], channels[1]),
                "dense": _dense(k[2], flat, hidden), "out": _dense(k[3], hidden, num_classes)}

    def apply(params, x):
        y = _conv_relu_pool(params["conv1"], x)
        y = _conv_relu_pool(params["conv2"], y)
        y = jax.nn.relu(y.reshape(y.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"])
        return y @ params["out"]["w"] + params["out"]["b"]

    return Model("cnn", init, apply)


def resnet(input_shape, num_classes, widths=(16, 32, 64)) -> Model:
    c = input_shape[-1]

    def init(key):
        keys = iter(jax.random.split(key, 3 * len(widths) + 2))
        params = {"stem": _conv(next(keys), 3, c, widths[0]), "blocks": []}
        c_in = widths[0]
        for width in widths:
            params["blocks"].append({"conv1": _conv(next(keys), 3, c_in, width),
                                     "conv2": _conv(next(keys), 3, width, width, scale=0.0),
                                     "skip": _conv(next(keys), 1, c_in, width)})
            c_in = width
        params["out"] = _dense(next(keys), c_in, num_classes)
        return params

    def apply(params, x):
        y = jax.nn.relu(_conv_apply(params["stem"], x))
        for i, block in enumerate(params["blocks"]):
            stride = 1 if i == 0 else 2
            r = jax.nn.relu(_conv_apply(block["conv1"], y, stride))
            r = _conv_apply(block["conv2"], r)
            y = jax.nn.relu(_conv_apply(block["skip"], y, stride) + r)
        y = y.mean(axis=(1, 2))
        return y @ params["out"]["w"] + params["out"]["b"]

    return Model("resnet", init, apply)


def make_model(name: str, input_shape, num_classes) -> Model:
    if name == "mlp":
        return mlp(input_shape, num_classes)
    if len(input_shape) != 3 and name in ("cnn", "resnet"):
        raise ValueError(f"model: {name} needs image inputs [H, W, C], got shape {tuple(input_shape)}; use mlp")
    if name == "cnn":
        return cnn(input_shape, num_classes)
    if name == "resnet":
        return resnet(input_shape, num_classes)
    raise ValueError(f"model: unknown {name!r}; allowed: {', '.join(MODELS)}")
