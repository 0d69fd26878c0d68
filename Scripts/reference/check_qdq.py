#!/usr/bin/env python3
"""Check a `whittle quantize` export against onnxruntime.

Usage: check_qdq.py DIR STEM DATA.npz SIM.npz

DIR holds STEM.onnx, STEM.encodings and STEM.qdq.onnx; SIM.npz holds Whittle's simulated
outputs on DATA.npz (`whittle run STEM.onnx --encodings STEM.encodings`). Checks:
- both ONNX files pass onnx.checker (full_check);
- every tensor named in the encodings is a tensor of STEM.onnx;
- onnxruntime runs STEM.qdq.onnx with graph optimizations off (the QDQ semantics, no integer
  kernel fusion) and its outputs equal Whittle's within one quantization step of each output
  (the output's own encoding): every value on shallow models; on deep ones a value that lands
  on a rounding boundary in one engine and not the other (float sums in another order) moves
  one step there and the difference travels on, so at least 97% of the values must be within
  one step and the largest difference is reported; argmax agreement is reported too;
- with all optimizations (onnxruntime's fused integer kernels) the difference in steps and the
  argmax agreement are reported, not checked: integer kernels round intermediate values their
  own way.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def encodings_by_name(path):
    with open(path) as handle:
        data = json.load(handle)
    version = str(data.get("version", "0.6.1"))
    acts, params = {}, {}
    if version.startswith("2"):
        for entry in data.get("encodings", []):
            acts[entry["name"]] = entry
    else:
        for group, target in (("activation_encodings", acts), ("param_encodings", params)):
            value = data.get(group, {})
            if isinstance(value, list):
                for entry in value:
                    target[entry["name"]] = entry
            else:
                target.update(value)
    return acts, params


def step_of(entry):
    if isinstance(entry, list):
        entry = entry[0]
    scale = entry.get("scale")
    if isinstance(scale, list):
        scale = scale[0]
    return float(scale)


def run(model, data, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {}
    for item in session.get_inputs():
        feed[item.name] = data[item.name] if item.name in data.files else data["x"]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feed)))


def main():
    folder, stem, data_path, sim_path = sys.argv[1:5]
    float_path, qdq_path = f"{folder}/{stem}.onnx", f"{folder}/{stem}.qdq.onnx"
    for path in (float_path, qdq_path):
        onnx.checker.check_model(path, full_check=True)
    model = onnx.load(float_path)
    tensors = {i.name for i in model.graph.initializer} | {i.name for i in model.graph.input}
    for node in model.graph.node:
        tensors.update(node.output)
    acts, params = encodings_by_name(f"{folder}/{stem}.encodings")
    missing = sorted((set(acts) | set(params)) - tensors)
    if missing:
        print(f"FAIL encodings name tensors missing from {stem}.onnx: {missing[:5]}")
        sys.exit(1)
    data = np.load(data_path)
    sim = np.load(sim_path)
    failed = False
    basic = run(qdq_path, data, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    fused = run(qdq_path, data, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    for name, reference in basic.items():
        ours = sim[name].astype(np.float64)
        step = step_of(acts[name]) if name in acts else 0.0
        diff = float(np.abs(ours - reference).max())
        limit = step * 1.0001 + 1e-5 * float(np.abs(reference).max())
        agree = float(np.mean(ours.argmax(-1) == reference.argmax(-1)))
        fused_diff = float(np.abs(ours - fused[name]).max())
        fused_agree = float(np.mean(ours.argmax(-1) == fused[name].argmax(-1)))
        within = float(np.mean(np.abs(ours - reference) <= limit))
        ok = within >= 0.97
        failed = failed or not ok
        steps = (diff / step) if step else float("nan")
        fused_steps = (fused_diff / step) if step else float("nan")
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {within * 100:.2f}% of values within one step, max diff {diff:.4g} = {steps:.2f} steps, "
              f"argmax agreement {agree:.4f}; fused integer kernels: {fused_steps:.2f} steps, agreement {fused_agree:.4f}; "
              f"{len(acts)} activation + {len(params)} param encodings")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
