#!/usr/bin/env bash
# Whittle vs onnxruntime, measured side by side in one run with the same thread count.
# Prints median latencies and the ratio (onnxruntime time / Whittle time: > 1 means Whittle
# is faster). Peak memory is the process's peak RSS (/proc VmHWM for Whittle, ru_maxrss for
# onnxruntime), each in its own process.
set -euo pipefail
WHITTLE=${1:-.build/release/whittle}
PY=.venv/bin/python
CACHE=${WHITTLE_MODEL_CACHE:-.cache/models}
THREADS=${THREADS:-$(nproc)}
REPEATS=${REPEATS:-20}

row() { # label model batch repeats
  local label=$1 model=$2 batch=$3 repeats=$4
  local w o
  o=$("$PY" Scripts/reference/ort_bench.py "$model" --batch "$batch" --threads "$THREADS" --repeats "$repeats")
  w=$("$WHITTLE" bench "$model" --batch "$batch" --threads "$THREADS" --repeats "$repeats" --json)
  "$PY" - "$label" "$w" "$o" <<'PYEOF'
import json, sys
label, w, o = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = o["medianMilliseconds"] / w["medianMilliseconds"]
mem = (w.get("peakResidentBytes") or 0) / 2**20, (o.get("peakResidentBytes") or 0) / 2**20
print(f"{label:<28} whittle {w['medianMilliseconds']:9.2f} ms  onnxruntime {o['medianMilliseconds']:9.2f} ms  "
      f"speed ratio {ratio:5.2f}x  peak RSS {mem[0]:7.1f} vs {mem[1]:7.1f} MiB")
PYEOF
}

echo "threads $THREADS, repeats $REPEATS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
row "digits-cnn batch 64" SampleModels/digits-cnn.onnx 64 "$REPEATS"
row "digits-mobilenet batch 64" SampleModels/digits-mobilenet.onnx 64 "$REPEATS"
if [ -f "$CACHE/efficientnet-lite0.onnx" ]; then
  row "efficientnet-lite0 batch 1" "$CACHE/efficientnet-lite0.onnx" 1 "$REPEATS"
  row "efficientnet-lite0 batch 32" "$CACHE/efficientnet-lite0.onnx" 32 $(( REPEATS / 4 > 3 ? REPEATS / 4 : 3 ))
else
  echo "efficientnet-lite0: $CACHE not found (run 'make models')"
fi
"$WHITTLE" microbench --threads "$THREADS"
