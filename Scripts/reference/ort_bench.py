"""Time onnxruntime on random inputs: median latency of repeats, like `whittle bench`.

usage: ort_bench.py MODEL --batch N [--threads T] [--repeats R] [--warmup W] [--dim NAME=SIZE]
Prints one JSON object (median/p10/p90 ms, samples/s, peak RSS).
"""
import argparse
import json
import resource
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dim", action="append", default=[])
    args = parser.parse_args()

    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    dims = dict(d.split("=") for d in args.dim)
    rng = np.random.default_rng(42)
    feeds = {}
    for inp in session.get_inputs():
        shape = []
        for axis, d in enumerate(inp.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif isinstance(d, str) and d in dims:
                shape.append(int(dims[d]))
            elif axis == 0:
                shape.append(args.batch)
            else:
                raise SystemExit(f"{args.model}: input {inp.name} dimension {axis} is symbolic ({d}); pass --dim {d}=SIZE")
        if shape and isinstance(inp.shape[0], int) and inp.shape[0] > 0 and inp.shape[0] != args.batch:
            pass
        feeds[inp.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
    for _ in range(args.warmup):
        session.run(None, feeds)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    times = np.array(times)
    median = float(np.median(times))
    print(json.dumps({
        "model": args.model, "batch": args.batch, "threads": args.threads,
        "medianMilliseconds": median * 1000,
        "p10Milliseconds": float(np.percentile(times, 10)) * 1000,
        "p90Milliseconds": float(np.percentile(times, 90)) * 1000,
        "samplesPerSecond": args.batch / median if median > 0 else 0,
        "peakResidentBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
