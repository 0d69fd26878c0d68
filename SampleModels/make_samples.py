#!/usr/bin/env python3
"""Regenerate Whittle's sample models and their data (deterministic, fixed seeds).

Produces, next to this file:
  digits-calib.npz, digits-test.npz      data (keys x: float32 [N,1,16,16], y: int64 [N])
  digits-cnn.onnx, digits-mobilenet.onnx trained float models (opset 13, ir_version 8,
                                         BatchNormalization kept unfolded)
  README.md                              model description with measured numbers

Setup (a training venv separate from anything else in the repo, CPU only):

    python3 -m venv .venv-train
    .venv-train/bin/pip install -r SampleModels/requirements-train.txt
    .venv-train/bin/python SampleModels/make_samples.py

Data: scikit-learn's bundled digits set (load_digits, 1797 8x8 images, values 0..16,
no download). Each image is upsampled to 16x16 with bilinear interpolation using the
half-pixel convention (like align_corners=False): output pixel o samples source
coordinate s = (o + 0.5) / 2 - 0.5, clamped to [0, 7], interpolated linearly between
floor(s) and floor(s)+1 (separable, rows then columns). Values are scaled to [0, 1]
(divide by 16) and normalized with (v - 0.5) / 0.5, so background is -1.
Split (numpy default_rng(0) permutation): first 360 -> test (held out), the rest
-> train; calibration = the first 512 samples of the training portion (the models
also trained on them).

Models are trained with plain JAX (own layers, hand-written Adam), BatchNorm in
training mode (batch statistics, running averages with momentum 0.9), random +-1
pixel shifts as augmentation. Each model is described once as a small layer list;
the same list drives the JAX forward pass and the ONNX export, and onnxruntime's
predictions on the test set are checked to equal JAX's eval-mode predictions.
"""

import io
import os
import time
import zipfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
N_TEST = 360
N_CALIB = 512
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # running = 0.9 * running + 0.1 * batch

# --------------------------------------------------------------------------- data


def bilinear_matrix(n_in, n_out):
    """[n_out, n_in] matrix for 1-D bilinear resize, half-pixel centers, edge clamp."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for o in range(n_out):
        s = min(max((o + 0.5) * scale - 0.5, 0.0), n_in - 1)
        i0 = int(np.floor(s))
        i1 = min(i0 + 1, n_in - 1)
        w = s - i0
        m[o, i0] += 1.0 - w
        m[o, i1] += w
    return m


def make_data():
    d = load_digits()
    imgs = d.images.astype(np.float64)  # [1797, 8, 8], 0..16
    u = bilinear_matrix(8, 16)
    up = np.einsum("ph,nhw,qw->npq", u, imgs, u)  # [N,16,16]
    x = ((up / 16.0 - 0.5) / 0.5).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(y))
    test_idx, train_idx = perm[:N_TEST], perm[N_TEST:]
    calib_idx = train_idx[:N_CALIB]
    return (x[train_idx], y[train_idx]), (x[calib_idx], y[calib_idx]), (x[test_idx], y[test_idx])


def save_npz(path, **arrays):
    """np.savez_compressed, then rewrite the zip with fixed timestamps (byte-reproducible)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))


def shift_augment(rng, xb):
    """Random shift of each image by -1/0/+1 pixels in x and y, filling with background."""
    n = xb.shape[0]
    pad = np.pad(xb, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    d = rng.integers(-1, 2, size=(n, 2))
    out = np.empty_like(xb)
    for i in range(n):
        dy, dx = d[i]
        out[i] = pad[i, :, 1 + dy:17 + dy, 1 + dx:17 + dx]
    return out


# ------------------------------------------------------------------ model specs
# Each layer: (op, name, input, output, attrs). Tensor names are node names.


class Spec:
    def __init__(self):
        self.layers = []
        self.cur = "x"
        self.shape = (1, 16, 16)  # C, H, W

    def conv(self, name, cout, k, stride=1, groups=1):
        cin, h, w = self.shape
        pad = k // 2
        self.layers.append(("conv", name, self.cur, name,
                            dict(cin=cin, cout=cout, k=k, stride=stride, pad=pad, groups=groups)))
        ho = (h + 2 * pad - k) // stride + 1
        wo = (w + 2 * pad - k) // stride + 1
        self.cur, self.shape = name, (cout, ho, wo)

    def bn(self, name):
        self.layers.append(("bn", name, self.cur, name, dict(c=self.shape[0])))
        self.cur = name

    def act(self, op, name):
        self.layers.append((op, name, self.cur, name, {}))
        self.cur = name

    def add(self, name, other):
        self.layers.append(("add", name, other, name, dict(other=self.cur)))
        self.cur = name

    def head(self, ncls=10, fc="fc"):
        c = self.shape[0]
        self.layers.append(("gap", "gap", self.cur, "gap", {}))
        self.layers.append(("flatten", "flatten", "gap", "flatten", {}))
        self.layers.append(("fc", fc, "flatten", "logits", dict(cin=c, cout=ncls)))
        self.cur, self.shape = "logits", (ncls,)


def cnn_spec():
    s = Spec()
    for i, (c, st) in enumerate([(16, 1), (32, 2), (64, 1), (64, 2)], start=1):
        s.conv(f"conv{i}", c, 3, st)
        s.bn(f"bn{i}")
        s.act("relu", f"relu{i}")
    s.head()
    return s


def mobilenet_spec():
    s = Spec()
    s.conv("stem.conv", 16, 3)
    s.bn("stem.bn")
    s.act("relu6", "stem.relu6")
    blocks = [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 32, 1)]
    for b, (t, c, st) in enumerate(blocks, start=1):
        p = f"block{b}"
        inp, cin = s.cur, s.shape[0]
        hid = cin * t
        if t != 1:
            s.conv(f"{p}.expand.conv", hid, 1)
            s.bn(f"{p}.expand.bn")
            s.act("relu6", f"{p}.expand.relu6")
        s.conv(f"{p}.dw.conv", hid, 3, st, groups=hid)
        s.bn(f"{p}.dw.bn")
        s.act("relu6", f"{p}.dw.relu6")
        s.conv(f"{p}.project.conv", c, 1)
        s.bn(f"{p}.project.bn")
        if st == 1 and cin == c:
            s.add(f"{p}.add", inp)
    s.conv("last.conv", 128, 1)
    s.bn("last.bn")
    s.act("relu6", "last.relu6")
    s.head()
    return s


# ------------------------------------------------------------------- JAX model


def init_params(spec, key):
    params, state = {}, {}
    for i, (op, name, _, _, a) in enumerate(spec.layers):
        k = jax.random.fold_in(key, i)
        if op == "conv":
            fan_in = a["cin"] // a["groups"] * a["k"] * a["k"]
            shape = (a["cout"], a["cin"] // a["groups"], a["k"], a["k"])
            params[f"{name}.weight"] = jax.random.normal(k, shape) * np.sqrt(2.0 / fan_in)
        elif op == "bn":
            c = a["c"]
            params[f"{name}.weight"] = jnp.ones((c,))
            params[f"{name}.bias"] = jnp.zeros((c,))
            state[f"{name}.running_mean"] = jnp.zeros((c,))
            state[f"{name}.running_var"] = jnp.ones((c,))
        elif op == "fc":
            params[f"{name}.weight"] = jax.random.normal(k, (a["cout"], a["cin"])) / np.sqrt(a["cin"])
            params[f"{name}.bias"] = jnp.zeros((a["cout"],))
    return params, state


def depthwise(h, w, stride, pad):
    """Depthwise conv (group == channels) on NHWC as a sum of k*k shifted products;
    same math as a grouped convolution, but much faster to train with on XLA CPU."""
    k = w.shape[2]
    n, hh, ww, c = h.shape
    ho = (hh + 2 * pad - k) // stride + 1
    wo = (ww + 2 * pad - k) // stride + 1
    hp = jnp.pad(h, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = hp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            out = out + patch * w[:, 0, i, j]
    return out


def forward(spec, params, state, x, train):
    """x is NCHW like the ONNX model; computed internally in NHWC (faster on XLA CPU).
    Weights are stored in ONNX layout (conv OIHW, fc [out, in])."""
    env = {"x": jnp.transpose(x, (0, 2, 3, 1))}
    new_state = dict(state)
    hi = jax.lax.Precision.HIGHEST
    for op, name, inp, out, a in spec.layers:
        h = env[inp]
        if op == "conv":
            w = params[f"{name}.weight"]
            if a["groups"] > 1:
                h = depthwise(h, w, a["stride"], a["pad"])
            elif a["k"] == 1 and a["stride"] == 1:
                h = jnp.einsum("nhwc,oc->nhwo", h, w[:, :, 0, 0], precision=hi)
            else:
                p = a["pad"]
                h = jax.lax.conv_general_dilated(
                    h, jnp.transpose(w, (2, 3, 1, 0)), (a["stride"], a["stride"]), [(p, p), (p, p)],
                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=hi)
        elif op == "bn":
            if train:
                mean = h.mean(axis=(0, 1, 2))
                var = h.var(axis=(0, 1, 2))
                n = h.shape[0] * h.shape[1] * h.shape[2]
                rm, rv = f"{name}.running_mean", f"{name}.running_var"
                new_state[rm] = BN_MOMENTUM * state[rm] + (1 - BN_MOMENTUM) * mean
                new_state[rv] = BN_MOMENTUM * state[rv] + (1 - BN_MOMENTUM) * var * n / (n - 1)
            else:
                mean, var = state[f"{name}.running_mean"], state[f"{name}.running_var"]
            h = (h - mean) / jnp.sqrt(var + BN_EPS) * params[f"{name}.weight"] + params[f"{name}.bias"]
        elif op == "relu":
            h = jnp.maximum(h, 0.0)
        elif op == "relu6":
            h = jnp.clip(h, 0.0, 6.0)
        elif op == "add":
            h = h + env[a["other"]]
        elif op == "gap":
            h = h.mean(axis=(1, 2))
        elif op == "flatten":
            pass  # gap already gives [N, C]
        elif op == "fc":
            h = jnp.dot(h, params[f"{name}.weight"].T, precision=hi) + params[f"{name}.bias"]
        env[out] = h
    return env["logits"], new_state


def train_model(spec, data, epochs, lr, batch=64, wd=1e-4, seed=SEED):
    x_tr, y_tr = data
    params, state = init_params(spec, jax.random.PRNGKey(seed))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = len(y_tr) // batch
    total = epochs * steps_per_epoch
    warm = steps_per_epoch

    def loss_fn(params, state, xb, yb):
        logits, new_state = forward(spec, params, state, xb, True)
        logp = jax.nn.log_softmax(logits)
        loss = -jnp.take_along_axis(logp, yb[:, None], axis=1).mean()
        return loss, new_state

    @jax.jit
    def step(params, state, m, v, t, xb, yb):
        (loss, new_state), g = jax.value_and_grad(loss_fn, has_aux=True)(params, state, xb, yb)
        tf = t.astype(jnp.float32)
        sched = jnp.where(tf < warm, (tf + 1) / warm,
                          0.5 * (1 + jnp.cos(jnp.pi * (tf - warm) / (total - warm))))
        a = lr * sched
        m = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        c1 = 1 - b1 ** (tf + 1)
        c2 = 1 - b2 ** (tf + 1)

        def upd(k, p_):
            decay = wd * p_ if k.endswith(".weight") and ".bn" not in k and not k.startswith("bn") else 0.0
            return p_ - a * ((m[k] / c1) / (jnp.sqrt(v[k] / c2) + eps) + decay)

        params = {k: upd(k, p_) for k, p_ in params.items()}
        return params, new_state, m, v, loss

    rng = np.random.default_rng(seed + 1)
    t = 0
    t0 = time.time()
    for ep in range(epochs):
        order = rng.permutation(len(y_tr))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            xb = shift_augment(rng, x_tr[idx])
            params, state, m, v, loss = step(params, state, m, v, jnp.int32(t), jnp.asarray(xb),
                                             jnp.asarray(y_tr[idx]))
            losses.append(loss)
            t += 1
        if (ep + 1) % 10 == 0 or ep == 0:
            print(f"  epoch {ep + 1:3d}/{epochs}  loss {float(np.mean(losses)):.4f}  "
                  f"({time.time() - t0:.0f}s)", flush=True)
    return jax.device_get(params), jax.device_get(state)


def predict_jax(spec, params, state, x):
    logits, _ = jax.jit(lambda p, s, x: forward(spec, p, s, x, False))(params, state, jnp.asarray(x))
    return np.asarray(logits)


# ------------------------------------------------------------------ ONNX export


def export_onnx(spec, params, state, graph_name, path):
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    inits, nodes, seen = [], [], set()

    def init(name, arr):
        if name not in seen:
            seen.add(name)
            inits.append(numpy_helper.from_array(arr, name))

    for op, name, inp, out, a in spec.layers:
        if op == "conv":
            init(f"{name}.weight", f32(params[f"{name}.weight"]))
            p, k, s = a["pad"], a["k"], a["stride"]
            nodes.append(helper.make_node("Conv", [inp, f"{name}.weight"], [out], name=name,
                                          kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                                          dilations=[1, 1], group=a["groups"]))
        elif op == "bn":
            ins = [inp]
            for suffix, src in (("weight", params), ("bias", params),
                                ("running_mean", state), ("running_var", state)):
                init(f"{name}.{suffix}", f32(src[f"{name}.{suffix}"]))
                ins.append(f"{name}.{suffix}")
            nodes.append(helper.make_node("BatchNormalization", ins, [out], name=name,
                                          epsilon=BN_EPS, momentum=BN_MOMENTUM))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [inp], [out], name=name))
        elif op == "relu6":
            init("relu6.min", np.array(0.0, np.float32))
            init("relu6.max", np.array(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [inp, "relu6.min", "relu6.max"], [out], name=name))
        elif op == "add":
            nodes.append(helper.make_node("Add", [inp, a["other"]], [out], name=name))
        elif op == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [inp], [out], name=name))
        elif op == "flatten":
            nodes.append(helper.make_node("Flatten", [inp], [out], name=name, axis=1))
        elif op == "fc":
            init(f"{name}.weight", f32(params[f"{name}.weight"]))
            init(f"{name}.bias", f32(params[f"{name}.bias"]))
            nodes.append(helper.make_node("Gemm", [inp, f"{name}.weight", f"{name}.bias"], [out],
                                          name=name, alpha=1.0, beta=1.0, transB=1))
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="whittle-make_samples", producer_version="1")
    model.ir_version = 8
    model.doc_string = f"{graph_name}: trained on sklearn digits upsampled to 16x16 (see SampleModels/README.md)"
    onnx.checker.check_model(model, full_check=True)
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return model


def count_stats(spec):
    macs, trainable = 0, 0
    shape = {"x": (1, 16, 16)}
    for op, name, inp, out, a in spec.layers:
        c, h, w = shape[inp] if len(shape[inp]) == 3 else (shape[inp][0], 1, 1)
        if op == "conv":
            ho = (h + 2 * a["pad"] - a["k"]) // a["stride"] + 1
            wo = (w + 2 * a["pad"] - a["k"]) // a["stride"] + 1
            per = a["cin"] // a["groups"] * a["k"] * a["k"]
            macs += a["cout"] * ho * wo * per
            trainable += a["cout"] * per
            shape[out] = (a["cout"], ho, wo)
        elif op == "bn":
            trainable += 2 * a["c"]
            shape[out] = shape[inp]
        elif op == "gap":
            shape[out] = (c, 1, 1)
        elif op == "flatten":
            shape[out] = (c,)
        elif op == "fc":
            macs += a["cin"] * a["cout"]
            trainable += a["cin"] * a["cout"] + a["cout"]
            shape[out] = (a["cout"],)
        else:
            shape[out] = shape[inp]
    return macs, trainable


# ------------------------------------------------------------------------ main


def main():
    t_start = time.time()
    train, calib, test = make_data()
    save_npz(os.path.join(HERE, "digits-calib.npz"), x=calib[0], y=calib[1])
    save_npz(os.path.join(HERE, "digits-test.npz"), x=test[0], y=test[1])
    print(f"data: train {len(train[1])}, calib {len(calib[1])}, test {len(test[1])}")

    results = []
    for fname, spec_fn, epochs, lr in (("digits-cnn", cnn_spec, 30, 3e-3),
                                       ("digits-mobilenet", mobilenet_spec, 30, 3e-3)):
        spec = spec_fn()
        print(f"training {fname} ({epochs} epochs)")
        t0 = time.time()
        params, state = train_model(spec, train, epochs, lr)
        train_s = time.time() - t0
        path = os.path.join(HERE, f"{fname}.onnx")
        model = export_onnx(spec, params, state, fname.replace("-", "_"), path)

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        res = {"name": fname, "train_s": train_s, "size": os.path.getsize(path)}
        for split, (x, y) in (("test", test), ("calib", calib)):
            lj = predict_jax(spec, params, state, x)
            lo = sess.run(["logits"], {"x": x})[0]
            pj, po = lj.argmax(1), lo.argmax(1)
            if not np.array_equal(pj, po):
                raise SystemExit(f"{fname}: JAX and onnxruntime predictions differ on {split}")
            res[f"{split}_jax"] = float((pj == y).mean())
            res[f"{split}_ort"] = float((po == y).mean())
            res[f"{split}_maxdiff"] = float(np.abs(lj - lo).max())
        macs, trainable = count_stats(spec)
        res["macs"], res["trainable"] = macs, trainable
        res["init_floats"] = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
        ops = {}
        for n in model.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        res["ops"] = ops
        print(f"{fname}: test acc JAX {res['test_jax']:.4f}  ORT {res['test_ort']:.4f} "
              f"(identical predictions, max |dlogit| {res['test_maxdiff']:.2e}); "
              f"calib acc ORT {res['calib_ort']:.4f}; params {trainable}; MACs {macs}; "
              f"{res['size']} bytes; trained in {train_s:.0f}s")
        results.append(res)

    write_readme(results)
    print(f"done in {time.time() - t_start:.0f}s")


README_HEAD = """# Sample models

Two small, really trained ONNX CNNs and their data, for running, quantizing and
compressing with Whittle. Everything here is generated by `make_samples.py`
(this README too); do not edit by hand.

## Regenerate

```sh
python3 -m venv .venv-train
.venv-train/bin/pip install -r SampleModels/requirements-train.txt
.venv-train/bin/python SampleModels/make_samples.py
```

CPU only, about 6-7 minutes on 2 busy cores. Seeds are fixed (numpy and JAX seed 0); the
data files are byte-reproducible; the models are reproducible for the same
package versions and machine type.

## Data

scikit-learn's bundled digits set (`sklearn.datasets.load_digits`: 1797 images,
8x8, values 0..16, 10 classes). Each image is upsampled to 16x16 by bilinear
interpolation (half-pixel centers, i.e. `align_corners=False`: output pixel `o`
samples source coordinate `(o + 0.5)/2 - 0.5`, clamped to `[0, 7]`; separable),
divided by 16 to `[0, 1]`, then normalized `(v - 0.5)/0.5` (background = -1).

Split with `np.random.default_rng(0).permutation(1797)`: the first 360 are the
held-out **test** set, the remaining 1437 are training data; the **calibration**
set is the first 512 of the training portion (the models were trained on them).

| file | x | y |
| --- | --- | --- |
| `digits-calib.npz` | float32 [512,1,16,16] | int64 [512] |
| `digits-test.npz` | float32 [360,1,16,16] | int64 [360] |

## Models

Both: opset 13, ir_version 8, input `x` float32 `[N,1,16,16]` (`N` symbolic),
output `logits` float32 `[N,10]`. Conv layers have no bias (each is followed by
an unfolded `BatchNormalization`, epsilon 1e-5, with running mean/var).
Initializers are named like `conv1.weight`, `bn1.running_var`; node names equal
their output tensor names. Trained with JAX (own layers, hand-written Adam,
1 epoch warm-up + cosine decay, decoupled weight decay 1e-4 on conv/fc weights,
30 epochs, batch 64, BatchNorm in training mode with running-average momentum 0.9, random
+-1 pixel shifts).

**digits-cnn**: `conv1` 3x3 1->16 + `bn1` + `relu1`; `conv2` 3x3 16->32 stride 2
+ BN + ReLU; `conv3` 3x3 32->64 + BN + ReLU; `conv4` 3x3 64->64 stride 2 + BN +
ReLU (all pad 1); `gap` GlobalAveragePool; `flatten`; `fc` Gemm 64->10 (transB=1).

**digits-mobilenet** (MobileNetV2-style): `stem` Conv 3x3 1->16 + BN + ReLU6;
inverted residual blocks (expand 1x1 + BN + ReLU6 -> depthwise 3x3 (group =
channels) + BN + ReLU6 -> project 1x1 + BN, no activation; residual `Add` when
stride 1 and in == out channels):

| block | expand t | out c | stride | residual |
| --- | --- | --- | --- | --- |
| block1 | 1 (no expand conv) | 16 | 1 | yes (16 == 16) |
| block2 | 4 | 24 | 2 | no |
| block3 | 4 | 24 | 1 | yes |
| block4 | 4 | 32 | 2 | no |
| block5 | 4 | 32 | 1 | yes |
| block6 | 4 | 32 | 1 | yes |

then `last` Conv 1x1 32->128 + BN + ReLU6, `gap`, `flatten`, `fc` Gemm 128->10.
ReLU6 is `Clip` with min/max as the shared scalar initializers `relu6.min` (0)
and `relu6.max` (6).

## Numbers

Params = trainable (conv/fc weights, fc bias, BN scale and shift; running
mean/var not counted). MACs per image = multiply-accumulates of Conv and Gemm
only. Accuracies are float accuracies measured with onnxruntime (CPU); the
script checks that onnxruntime's predictions equal the JAX model's eval-mode
predictions on both sets.

| model | params | initializer floats | MACs/image | file bytes | test acc (360) | calib acc (512) | ops |
| --- | --- | --- | --- | --- | --- | --- | --- |
"""


def write_readme(results):
    rows = []
    for r in results:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items()))
        rows.append(f"| `{r['name']}.onnx` | {r['trainable']:,} | {r['init_floats']:,} | {r['macs']:,} | "
                    f"{r['size']:,} | {100 * r['test_ort']:.2f}% | {100 * r['calib_ort']:.2f}% | {ops} |")
    with open(os.path.join(HERE, "README.md"), "w") as fh:
        fh.write(README_HEAD + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
