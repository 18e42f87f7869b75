"""Models as pairs of pure functions: ``init(key) -> params`` and ``apply(params, x) -> logits``.

- ``mlp``: flatten, dense layers with ReLU.
- ``cnn``: two 3x3 conv layers (8, 16 channels) each with ReLU and 2x2 max-pool,
  then a dense layer of 64 and the classifier (a small CNN sized for a 2-core CPU).
- ``resnet``: a small ResNet for CIFAR (ResNet-8: a stem and three stages of one basic
  block, 16/32/64 channels, no batch norm: the residual branch's last conv starts at
  zero, so each block starts as the identity).
Weights: He-normal, biases zero, from the seed.
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
        y = _max_pool(jax.nn.relu(_conv_apply(params["conv1"], x)))
        y = _max_pool(jax.nn.relu(_conv_apply(params["conv2"], y)))
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
