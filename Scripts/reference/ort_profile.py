"""Where onnxruntime spends its time on a model, from its own per-node profiler.

usage: ort_profile.py MODEL --batch N [--threads T] [--repeats R]
Prints one JSON object: total kernel milliseconds per run (median over the repeats after the
first), per op type, and Conv split into depthwise (weight [C, 1, kh, kw] over C input
channels) and the other convolutions, to set against `whittle microbench --model`.
"""
import argparse
import collections
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    directory = tempfile.mkdtemp()
    options.profile_file_prefix = os.path.join(directory, "profile")
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    feeds = {}
    rng = np.random.default_rng(42)
    for inp in session.get_inputs():
        shape = [args.batch] + [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape[1:]]
        feeds[inp.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
    for _ in range(args.repeats):
        session.run(None, feeds)
    path = session.end_profiling()
    with open(path) as handle:
        events = json.load(handle)
    os.remove(path)

    durations = collections.defaultdict(list)
    kinds = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        op = event["args"].get("op_name", "?")
        kind = op
        if op == "Conv":
            shapes = [next(iter(s.values())) for s in event["args"].get("input_type_shape", [])]
            depthwise = len(shapes) >= 2 and len(shapes[1]) == 4 and shapes[1][1] == 1 and shapes[0][1] == shapes[1][0] > 1
            kind = "Conv (depthwise)" if depthwise else "Conv (other)"
        kinds[name] = kind
        durations[name].append(event["dur"] / 1000)
    per_kind = collections.Counter()
    for name, values in durations.items():
        values = sorted(values[1:] or values)  # the first run warms up
        per_kind[kinds[name]] += values[len(values) // 2]
    report = {
        "model": args.model, "batch": args.batch, "threads": args.threads,
        "totalMilliseconds": round(sum(per_kind.values()), 3),
        "byKind": {kind: round(ms, 3) for kind, ms in per_kind.most_common()},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
