"""Rough multiply-accumulate count of Conv/MatMul/Gemm in an ONNX model for a given input shape."""
import numpy as np
import onnx
from onnx import shape_inference


def macs(path, input_shape):
    m = onnx.load(path)
    inp = m.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, input_shape):
        d.ClearField("dim_param")
        d.dim_value = v
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = list(a.t.dims)
    total = 0
    for n in m.graph.node:
        out = shapes.get(n.output[0])
        if not out or None in out:
            continue
        if n.op_type == "Conv":
            w = shapes.get(n.input[1])
            if w and None not in w:
                total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm"):
            a = shapes.get(n.input[0])
            if a and None not in a:
                k = a[-1] if n.op_type == "MatMul" or not any(at.name == "transA" and at.i for at in n.attribute) else a[-2]
                total += int(np.prod(out)) * k
    return total
