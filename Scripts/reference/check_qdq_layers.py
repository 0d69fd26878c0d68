#!/usr/bin/env python3
"""Layer-by-layer parity of a `whittle quantize` QDQ export with Whittle's simulation.

End to end, a value that lands on a rounding boundary in one engine and not in the other
(float sums in another order) moves one step and the difference travels on through a deep
network. This check removes that propagation: every quantized activation T of STEM.qdq.onnx
is recomputed by onnxruntime from Whittle's own simulated values of the quantized tensors
that feed it (the sub-model between them, cut out with onnx.utils.Extractor), and must then
equal Whittle's value of T within one quantization step of T's encoding, for every value.

Usage:
  check_qdq_layers.py prepare DIR STEM DATA.npz SMALL.npz [SAMPLES]
      writes the first SAMPLES (default 2) samples of DATA.npz to SMALL.npz and prints the
      comma-separated names of the quantized activations (for `whittle run --tensors`).
  check_qdq_layers.py check DIR STEM SMALL.npz TENSORS.npz
      TENSORS.npz: `whittle run STEM.onnx --encodings STEM.encodings --input SMALL.npz
      --tensors NAMES`. Prints one summary line; exits 1 when any value is off by more than
      one step.
"""
import json
import sys

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort


def activation_steps(path):
    """Step (scale) of every per-tensor activation encoding, by tensor name."""
    with open(path) as handle:
        data = json.load(handle)
    version = str(data.get("version", "0.6.1"))
    steps = {}
    if version.startswith("2"):
        entries = [(e["name"], e) for e in data.get("encodings", [])]
    else:
        value = data.get("activation_encodings", {})
        entries = [(e["name"], e) for e in value] if isinstance(value, list) else list(value.items())
    for name, entry in entries:
        if isinstance(entry, list):
            entry = entry[0]
        scale = entry.get("scale")
        if isinstance(scale, list):
            if len(scale) != 1:
                continue
            scale = scale[0]
        if scale is not None and float(scale) > 0:
            steps[name] = float(scale)
    return steps


def producers(model):
    result = {}
    for node in model.graph.node:
        for output in node.output:
            result[output] = node
    return result


def quantized_activations(model, steps):
    """Encoded activations that a node of the QDQ model produces (graph inputs excluded)."""
    made = producers(model)
    return [name for name in sorted(steps) if name in made]


def boundary(model, target, quantized, graph_inputs, made, constants):
    """The runtime tensors a sub-model computing `target` must be fed: the nearest quantized
    activations (or graph inputs) upstream of it."""
    inputs, seen = set(), set()
    stack = list(made[target].input)
    while stack:
        name = stack.pop()
        if not name or name in seen or name in constants:
            continue
        seen.add(name)
        if name in quantized or name in graph_inputs:
            inputs.add(name)
        elif name in made:
            stack.extend(made[name].input)
    return sorted(inputs)


def prepare(folder, stem, data_path, small_path, samples):
    model = onnx.load(f"{folder}/{stem}.qdq.onnx")
    steps = activation_steps(f"{folder}/{stem}.encodings")
    data = np.load(data_path)
    np.savez(small_path, **{key: data[key][:samples] for key in data.files if key != "y"})
    print(",".join(quantized_activations(model, steps)))


def check(folder, stem, small_path, tensors_path):
    qdq_path = f"{folder}/{stem}.qdq.onnx"
    model = onnx.load(qdq_path)
    steps = activation_steps(f"{folder}/{stem}.encodings")
    quantized = set(quantized_activations(model, steps))
    graph_inputs = {i.name for i in model.graph.input}
    constants = {i.name for i in model.graph.initializer}
    made = producers(model)
    # Nodes whose inputs are all constants (dequantized weights) are constants as well.
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if all((not i) or i in constants for i in node.input) and not set(node.output) <= constants:
                constants.update(node.output)
                changed = True
    data = np.load(small_path)
    ours = np.load(tensors_path)
    # The extractor needs the type of every tensor it cuts at; shape inference does not know
    # com.microsoft's 16-bit QuantizeLinear, so the quantized activations are typed from
    # Whittle's arrays.
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name for v in inferred.graph.value_info} | {v.name for v in inferred.graph.output}
    for name in sorted(quantized - known):
        inferred.graph.value_info.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    extractor = onnx.utils.Extractor(inferred)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    worst_steps, worst_name, exact, total, failures = 0.0, "", 0, 0, []
    for target in sorted(quantized):
        feeds = boundary(model, target, quantized, graph_inputs, made, constants)
        sub = extractor.extract_model(feeds, [target])
        session = ort.InferenceSession(sub.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {}
        for name in feeds:
            source = data if name in graph_inputs else ours
            key = name if name in source.files else "x"
            feed[name] = source[key].astype(np.float32)
        reference = session.run(None, feed)[0].astype(np.float64)
        value = ours[target].astype(np.float64).reshape(reference.shape)
        diff = np.abs(value - reference)
        step = steps[target]
        off = float(diff.max()) / step
        total += diff.size
        exact += int((diff <= 1e-6 * step).sum())
        if off > worst_steps:
            worst_steps, worst_name = off, target
        # One step, plus the float32 rounding of the values themselves (16-bit grids have
        # steps close to float32's resolution at the tensor's magnitude).
        limit = step * 1.0001 + 1e-6 * float(np.abs(reference).max())
        if float(diff.max()) > limit:
            failures.append(f"{target}: {off:.2f} steps")
    status = "ok  " if not failures else "FAIL"
    print(f"{status} layer by layer: {len(quantized)} quantized activations, {exact / max(total, 1) * 100:.3f}% of values "
          f"identical, largest difference {worst_steps:.2f} steps ({worst_name})")
    for line in failures[:10]:
        print(f"     {line}")
    sys.exit(1 if failures else 0)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "prepare" and len(sys.argv) in (6, 7):
        prepare(*sys.argv[2:6], int(sys.argv[6]) if len(sys.argv) == 7 else 2)
    elif mode == "check" and len(sys.argv) == 6:
        check(*sys.argv[2:6])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
