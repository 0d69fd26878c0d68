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
  # Peak RSS of a whole batch-32 process as the kernel accounts it (/usr/bin/time -v), both engines.
  if [ -x /usr/bin/time ]; then
    rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}'; }
    wr=$(rss "$WHITTLE" bench "$CACHE/efficientnet-lite0.onnx" --batch 32 --threads "$THREADS" --repeats 3 --json)
    orr=$(rss "$PY" Scripts/reference/ort_bench.py "$CACHE/efficientnet-lite0.onnx" --batch 32 --threads "$THREADS" --repeats 3)
    echo "efficientnet-lite0 batch 32 peak RSS (/usr/bin/time -v): whittle $wr MiB, onnxruntime $orr MiB"
  fi
  # One thread, same process kind for each: the raw cblas_sgemm time of the model's
  # non-depthwise convolutions (the floor for an im2col/GEMM engine on OpenBLAS) next to
  # Whittle's whole run, and onnxruntime's own profile split into depthwise and other convs.
  echo "efficientnet-lite0 batch 32, one thread:"
  "$WHITTLE" microbench --model "$CACHE/efficientnet-lite0.onnx" --batch 32 --threads 1 --repeats 3 | tail -1
  "$PY" Scripts/reference/ort_profile.py "$CACHE/efficientnet-lite0.onnx" --batch 32 --threads 1
else
  echo "efficientnet-lite0: $CACHE not found (run 'make models')"
fi
"$WHITTLE" microbench --threads "$THREADS"
echo "load after the speed rows: $(uptime)"

# Quantization simulation vs float inference, same model, same process kind, alternating runs
# (ratio of medians; > 1 means the simulation is slower), and calibration cost per scheme.
simrow() { # label model calib batch repeats
  local label=$1 model=$2 calib=$3 batch=$4 repeats=$5 out
  out=$(mktemp -d)
  "$WHITTLE" quantize "$model" --data "$calib" --plain --per-channel --out "$out" --json >/dev/null
  local stem; stem=$(basename "$model" .onnx)
  local f=() s=()
  for _ in 1 2 3; do
    f+=("$("$WHITTLE" bench "$out/$stem.onnx" --batch "$batch" --threads "$THREADS" --repeats "$repeats" --json)")
    s+=("$("$WHITTLE" bench "$out/$stem.onnx" --encodings "$out/$stem.encodings" --batch "$batch" --threads "$THREADS" --repeats "$repeats" --json)")
  done
  local mm ss
  mm=$("$WHITTLE" quantize "$model" --data "$calib" --plain --per-channel --out "$out/mm" --json)
  ss=$("$WHITTLE" quantize "$model" --data "$calib" --plain --per-channel --scheme sqnr --out "$out/ss" --json)
  "$PY" - "$label" "$mm" "$ss" "${f[@]}" "${s[@]}" <<'PYEOF'
import json, statistics, sys
label, mm, ss = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
runs = [json.loads(a) for a in sys.argv[4:]]
floats, sims = runs[:3], runs[3:]
fm = statistics.median(r["medianMilliseconds"] for r in floats)
sm = statistics.median(r["medianMilliseconds"] for r in sims)
fr = max(r.get("peakResidentBytes") or 0 for r in floats) / 2**20
sr = max(r.get("peakResidentBytes") or 0 for r in sims) / 2**20
cal = lambda j: sum(v for k, v in j["seconds"].items() if k.startswith("calibrate"))
print(f"{label:<28} float {fm:8.2f} ms  simulated {sm:8.2f} ms  time ratio {sm / fm:4.2f}x  "
      f"peak RSS {fr:6.1f} vs {sr:6.1f} MiB ({sr / fr:4.2f}x)  calibration sqnr/minmax {cal(ss):.2f}/{cal(mm):.2f} s = {cal(ss) / cal(mm):4.2f}x")
PYEOF
  rm -rf "$out"
}
simrow "digits-mobilenet batch 64" SampleModels/digits-mobilenet.onnx SampleModels/digits-calib.npz 64 "$REPEATS"
if [ -f "$CACHE/efficientnet-lite0.onnx" ]; then
  simrow "efficientnet-lite0 batch 32" "$CACHE/efficientnet-lite0.onnx" "$CACHE/photos-calib.npz" 32 $(( REPEATS / 4 > 3 ? REPEATS / 4 : 3 ))
fi

# AdaRound on digits-cnn at AIMET's default 10 000 iterations per layer (8-bit weights,
# per-channel): seconds of the AdaRound step and of the whole command, medians of 3.
adaround_out=$(mktemp -d)
"$PY" - "$WHITTLE" "$THREADS" "$adaround_out" <<'PYEOF'
import json, statistics, subprocess, sys, time
whittle, threads, out = sys.argv[1:4]
steps, walls = [], []
for _ in range(3):
    start = time.monotonic()
    result = subprocess.run([whittle, "quantize", "SampleModels/digits-cnn.onnx", "--data", "SampleModels/digits-calib.npz",
                             "--per-channel", "--adaround", "--threads", threads, "--out", out, "--json"],
                            check=True, capture_output=True, text=True)
    walls.append(time.monotonic() - start)
    steps.append(json.loads(result.stdout)["seconds"]["adaround"])
print(f"{'digits-cnn AdaRound 10k it.':<28} AdaRound step {statistics.median(steps):6.2f} s  whole quantize {statistics.median(walls):6.2f} s wall (medians of 3)")
PYEOF
rm -rf "$adaround_out"
