#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime (CPUExecutionProvider) on inputs from an .npz file.

Usage: ort_run.py MODEL IN.npz OUT.npz [--threads N]

Inputs are looked up by the model's input names; a model with exactly one input may take
it from the key `x` instead. Each input is cast to the dtype the model declares. Outputs
are written with np.savez, keyed by the model's output names.
"""
import argparse
import sys

import numpy as np
import onnxruntime as ort

ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--no-optimizations", action="store_true",
                        help="run with ORT_DISABLE_ALL (no fusions): measures onnxruntime's own float noise")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0 lets onnxruntime choose)")
    args = parser.parse_args()

    options = ort.SessionOptions()
    if args.no_optimizations:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if args.threads > 0:
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    model_inputs = session.get_inputs()

    feeds = {}
    with np.load(args.inputs, allow_pickle=False) as archive:
        keys = list(archive.keys())
        for info in model_inputs:
            if info.name in archive:
                value = archive[info.name]
            elif len(model_inputs) == 1 and "x" in archive:
                value = archive["x"]
            else:
                sys.exit(f"{args.inputs}: no array for model input '{info.name}' "
                         f"(archive holds {', '.join(keys) or 'nothing'})")
            dtype = ORT_TO_NUMPY.get(info.type)
            if dtype is None:
                sys.exit(f"{args.model}: input '{info.name}' has unsupported type {info.type}")
            feeds[info.name] = np.ascontiguousarray(value.astype(dtype, copy=False))

    names = [output.name for output in session.get_outputs()]
    results = session.run(names, feeds)
    np.savez(args.outputs, **dict(zip(names, results)))
    for name, value in zip(names, results):
        print(f"{name}: {value.dtype} {list(value.shape)}")


if __name__ == "__main__":
    main()
