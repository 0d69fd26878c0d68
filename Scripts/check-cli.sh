#!/usr/bin/env bash
# Bad input through the real binary: every case must exit 1 (not crash, not hang) with a
# single-line error that names the offending file, flag or tensor.
set -u
WHITTLE=${1:-.build/release/whittle}
PY=.venv/bin/python
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0
MODEL=SampleModels/digits-cnn.onnx
DATA=SampleModels/digits-test.npz

# expect_error NAME PATTERN -- command...   (exit status 1 or 64, one line on stderr matching PATTERN)
expect_error() {
  local name=$1 pattern=$2; shift 3
  timeout 60 "$@" >"$WORK/out" 2>"$WORK/err"; local status=$?
  local lines; lines=$(grep -c . "$WORK/err")
  if { [ $status = 1 ] || [ $status = 64 ]; } && grep -q -- "$pattern" "$WORK/err" && [ "$lines" -le 3 ]; then
    passed=$((passed + 1)); echo "ok    $name: $(head -n 1 "$WORK/err")"
  else
    failed=$((failed + 1)); echo "FAIL  $name (exit $status, want 1 with /$pattern/)"; sed 's/^/      /' "$WORK/err" | head -5
  fi
}

expect_ok() {
  local name=$1; shift 2
  if timeout 120 "$@" >"$WORK/out" 2>"$WORK/err"; then passed=$((passed + 1)); echo "ok    $name"
  else failed=$((failed + 1)); echo "FAIL  $name"; sed 's/^/      /' "$WORK/err" | head -5; fi
}

head -c 1000 "$MODEL" > "$WORK/truncated.onnx"
head -c 4096 /dev/urandom > "$WORK/random.onnx"
echo "not a model" > "$WORK/text.onnx"
head -c 300 "$DATA" > "$WORK/truncated.npz"
"$PY" - "$WORK" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto
w = sys.argv[1]
np.savez(f"{w}/wrongkey.npz", images=np.zeros((4, 1, 16, 16), np.float32))
np.savez(f"{w}/wrongshape.npz", x=np.zeros((4, 3, 16, 16), np.float32))
np.savez(f"{w}/badlabels.npz", x=np.zeros((4, 1, 16, 16), np.float32), y=np.zeros((3,), np.int64))
np.savez(f"{w}/nolabels.npz", x=np.zeros((4, 1, 16, 16), np.float32))
np.savez(f"{w}/fortran.npz", x=np.asfortranarray(np.zeros((4, 1, 16, 16), np.float32)))
np.savez(f"{w}/object.npz", x=np.array([None, 1], dtype=object))
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
g = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], name="mystery")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{w}/unsupported.onnx")
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 7)]), f"{w}/opset7.onnx")
g = helper.make_graph([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{w}/dangling.onnx")
PYEOF

printf '{\n  "version": 1,\n  "model": "m.onnx",,\n}\n' > "$WORK/corrupt-profile.json"
printf '{"version": 99, "model": "%s"}\n' "$PWD/$MODEL" > "$WORK/newer-profile.json"
printf '{"version": 1, "model": "gone.onnx"}\n' > "$WORK/missing-model-profile.json"
printf '{"version": 1, "model": "%s", "calibrationData": "%s"}\n' "$PWD/$MODEL" "$PWD/SampleModels/digits-calib.npz" > "$WORK/profile.json"
cp "$WORK/corrupt-profile.json" "$WORK/corrupt-profile.orig"

expect_error missing-model "nope.onnx" -- "$WHITTLE" inspect "$WORK/nope.onnx"
expect_error truncated-model "truncated.onnx" -- "$WHITTLE" inspect "$WORK/truncated.onnx"
expect_error random-model "random.onnx" -- "$WHITTLE" inspect "$WORK/random.onnx"
expect_error text-model "text.onnx" -- "$WHITTLE" inspect "$WORK/text.onnx"
expect_error unsupported-op "Frobnicate" -- "$WHITTLE" inspect "$WORK/unsupported.onnx"
expect_error bad-opset "opset" -- "$WHITTLE" inspect "$WORK/opset7.onnx"
expect_error dangling-input "ghost" -- "$WHITTLE" inspect "$WORK/dangling.onnx"
expect_error truncated-data "truncated.npz" -- "$WHITTLE" eval "$MODEL" --data "$WORK/truncated.npz"
expect_error missing-input-key "x" -- "$WHITTLE" eval "$MODEL" --data "$WORK/wrongkey.npz"
expect_error wrong-input-shape "shape" -- "$WHITTLE" eval "$MODEL" --data "$WORK/wrongshape.npz"
expect_error label-count "label" -- "$WHITTLE" eval "$MODEL" --data "$WORK/badlabels.npz"
expect_error fortran-order "ortran" -- "$WHITTLE" eval "$MODEL" --data "$WORK/fortran.npz"
expect_error object-array "object" -- "$WHITTLE" run "$MODEL" --input "$WORK/object.npz" --output "$WORK/o.npz"
expect_error zero-batch "batch" -- "$WHITTLE" eval "$MODEL" --data "$DATA" --batch 0
expect_error bad-threads "threads" -- "$WHITTLE" bench "$MODEL" --threads 0
expect_error unknown-flag "frobnicate" -- "$WHITTLE" inspect "$MODEL" --frobnicate
expect_error output-dir-missing "missing-dir" -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/missing-dir/o.npz"
expect_error corrupt-profile "corrupt-profile.json: not valid JSON (line 3" -- "$WHITTLE" report --profile "$WORK/corrupt-profile.json" --out "$WORK/r.html"
cmp -s "$WORK/corrupt-profile.json" "$WORK/corrupt-profile.orig" || { failed=$((failed + 1)); echo "FAIL  corrupt profile was modified"; }
expect_error newer-profile "made by a newer Whittle (version 99" -- "$WHITTLE" report --profile "$WORK/newer-profile.json" --out "$WORK/r.html"
expect_error missing-profile "no-profile.json: no such profile" -- "$WHITTLE" report --profile "$WORK/no-profile.json" --out "$WORK/r.html"
expect_error profile-missing-model "gone.onnx" -- "$WHITTLE" report --profile "$WORK/missing-model-profile.json" --out "$WORK/r.html"
expect_error report-dir-missing "missing-dir" -- "$WHITTLE" report --profile "$WORK/profile.json" --out "$WORK/missing-dir/r.html"
[ ! -e "$WORK/r.html" ] || { failed=$((failed + 1)); echo "FAIL  report written despite an error"; }
[ ! -e "$WORK/missing-dir/o.npz" ] || { failed=$((failed + 1)); echo "FAIL  half-written output left behind"; }
expect_error compress-both-goals "only one of" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --target-macs 0.5 --ratios conv1=0.5 --out "$WORK/c"
expect_error compress-no-goal "target-macs" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --out "$WORK/c"
expect_error compress-bad-target "target-macs" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --target-macs 1.5 --out "$WORK/c"
expect_error compress-ratio-range "(0, 1]" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --ratios conv2=0 --out "$WORK/c"
expect_error compress-unknown-layer "nope" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --ratios nope=0.5 --out "$WORK/c"
expect_error compress-unknown-ignore "ghost" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --target-macs 0.5 --ignore ghost --out "$WORK/c"
expect_error compress-bad-scheme "unknown technique" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --scheme svd --target-macs 0.5 --out "$WORK/c"
expect_error compress-unreachable "unreachable" -- "$WHITTLE" compress "$MODEL" --data "$DATA" --target-macs 0.01 --eval-samples 8 --no-cache --out "$WORK/c"
expect_error compress-ineligible "not eligible" -- "$WHITTLE" compress SampleModels/digits-mobilenet.onnx --data "$DATA" --ratios "$("$PY" -c "import onnx; m=onnx.load('SampleModels/digits-mobilenet.onnx'); print(next(n.name for n in m.graph.node if n.op_type=='Conv' and any(a.name=='group' and a.i>1 for a in n.attribute)))")=0.5" --out "$WORK/c"
expect_error sensitivity-accuracy-no-labels "labels" -- "$WHITTLE" sensitivity "$MODEL" --data "$WORK/nolabels.npz" --metric accuracy
expect_error sensitivity-candidates "candidates" -- "$WHITTLE" sensitivity "$MODEL" --data "$DATA" --candidates 1

expect_ok compress-manual -- "$WHITTLE" compress "$MODEL" --data "$DATA" --ratios conv3=0.5 --eval-samples 16 --out "$WORK/c"
expect_ok sensitivity -- "$WHITTLE" sensitivity "$MODEL" --data "$DATA" --eval-samples 16 --candidates 4 --cache-dir "$WORK/cache" --out "$WORK/table.json"

# Quantization: bad recipes, configs and encodings files.
CALIB=SampleModels/digits-calib.npz
"$WHITTLE" quantize "$MODEL" --data "$CALIB" --calibration-samples 64 --out "$WORK/q" >/dev/null 2>&1
echo '{"version": "1.0.0", "activation_encodings": [' > "$WORK/broken.encodings"
"$PY" - "$WORK" <<'PYEOF'
import json, sys
w = sys.argv[1]
e = json.load(open(f"{w}/q/digits-cnn.encodings"))
e["activation_encodings"].append(dict(e["activation_encodings"][0], name="no_such_tensor"))
json.dump(e, open(f"{w}/unknown-tensor.encodings", "w"))
e = json.load(open(f"{w}/q/digits-cnn.encodings"))
e["param_encodings"][0]["bw"] = 3
json.dump(e, open(f"{w}/bad-bits.encodings", "w"))
json.dump({"defaults": {"ops": {"is_output_quantized": "maybe"}}}, open(f"{w}/bad-config.json", "w"))
json.dump({"defaults": {"ops": {"is_output_quantised": "False"}, "params": {}}, "params": {}, "op_type": {},
           "supergroups": [], "model_input": {}, "model_output": {}}, open(f"{w}/typo-config.json", "w"))
import numpy as np
x = np.load("SampleModels/digits-calib.npz")["x"][:64].copy()
x[5, 0, 3, 3] = np.nan
np.savez(f"{w}/nan.npz", x=x)
x[5, 0, 3, 3] = np.inf
np.savez(f"{w}/inf.npz", x=x)
PYEOF
expect_error quantize-weight-bits "weight bits" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --weights 3 --out "$WORK/q2"
expect_error quantize-activation-bits "activation bits" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --activations 17 --out "$WORK/q2"
expect_error quantize-scheme "entropy" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --scheme entropy --out "$WORK/q2"
expect_error quantize-percentile "percentile" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --scheme percentile:30 --out "$WORK/q2"
expect_error quantize-config-missing "nope.json" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --config nope.json --out "$WORK/q2"
expect_error quantize-config-bad "bad-config.json" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --config "$WORK/bad-config.json" --out "$WORK/q2"
expect_error quantize-bits-syntax "NAME=BITS" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --bits conv1 --out "$WORK/q2"
expect_error quantize-bits-unknown "nothing_here" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --bits nothing_here=8 --out "$WORK/q2"
expect_error quantize-encodings-version "9.9" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --encodings-version 9.9 --out "$WORK/q2"
expect_error quantize-nan-calibration "nan.npz" -- "$WHITTLE" quantize "$MODEL" --data "$WORK/nan.npz" --out "$WORK/q2"
expect_error quantize-inf-eval "inf.npz" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --eval "$WORK/inf.npz" --plain --out "$WORK/q2"
expect_error eval-encodings-nan "nan.npz" -- "$WHITTLE" eval "$WORK/q/digits-cnn.onnx" --data "$WORK/nan.npz" --encodings "$WORK/q/digits-cnn.encodings"
expect_error quantize-bias-correction-samples "bias-correction samples" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --activation-bias-correction --bias-correction-samples 0 --out "$WORK/q2"
expect_error quantize-float16-and-float "choose one" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --float16 conv1 --float conv1 --out "$WORK/q2"
expect_error quantize-float16-unknown "nothing_here" -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --float16 nothing_here --out "$WORK/q2"
# --float16: the layer's weight is a float16 pass-through in the encodings, and the QDQ export runs.
if "$WHITTLE" quantize "$MODEL" --data "$CALIB" --plain --per-channel --float16 conv1 --out "$WORK/q16" >/dev/null 2>"$WORK/err" \
   && "$PY" -c "
import json, sys, onnx, onnxruntime as ort, numpy as np
e = json.load(open('$WORK/q16/digits-cnn.encodings'))
floats = [p for p in e['param_encodings'] if p.get('dtype') == 'FLOAT' and p.get('bw') == 16]
assert floats, 'no float16 param encoding'
m = onnx.load('$WORK/q16/digits-cnn.qdq.onnx'); onnx.checker.check_model(m)
assert any(n.op_type == 'Cast' for n in m.graph.node), 'no Cast in the QDQ export'
s = ort.InferenceSession('$WORK/q16/digits-cnn.qdq.onnx', providers=['CPUExecutionProvider'])
i = s.get_inputs()[0]; s.run(None, {i.name: np.zeros([1] + list(i.shape[1:]), np.float32)})
" 2>>"$WORK/err"; then
  passed=$((passed + 1)); echo "ok    quantize-float16: float16 weight encoding, QDQ export with Casts runs in onnxruntime"
else
  failed=$((failed + 1)); echo "FAIL  quantize-float16"; sed 's/^/      /' "$WORK/err" | head -5
fi
if "$WHITTLE" quantize "$MODEL" --data "$CALIB" --plain --config "$WORK/typo-config.json" --out "$WORK/q4" >/dev/null 2>"$WORK/err" \
   && grep -q "is_output_quantised: unknown key" "$WORK/err"; then
  passed=$((passed + 1)); echo "ok    quantize-config-unknown-key: $(head -n 1 "$WORK/err")"
else
  failed=$((failed + 1)); echo "FAIL  quantize-config-unknown-key (no warning)"; sed 's/^/      /' "$WORK/err" | head -5
fi
expect_error encodings-truncated "broken.encodings" -- "$WHITTLE" eval "$WORK/q/digits-cnn.onnx" --data "$DATA" --encodings "$WORK/broken.encodings"
expect_error encodings-unknown-tensor "no_such_tensor" -- "$WHITTLE" eval "$WORK/q/digits-cnn.onnx" --data "$DATA" --encodings "$WORK/unknown-tensor.encodings"
expect_error encodings-bad-bits "bad-bits.encodings" -- "$WHITTLE" eval "$WORK/q/digits-cnn.onnx" --data "$DATA" --encodings "$WORK/bad-bits.encodings"
expect_error encodings-missing "absent.encodings" -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/o.npz" --encodings "$WORK/absent.encodings"
expect_ok quantize -- "$WHITTLE" quantize "$MODEL" --data "$CALIB" --calibration-samples 64 --out "$WORK/q3"
expect_ok eval-encodings -- "$WHITTLE" eval "$WORK/q/digits-cnn.onnx" --data "$DATA" --encodings "$WORK/q/digits-cnn.encodings"

expect_ok inspect-json -- "$WHITTLE" inspect "$MODEL" --json
expect_ok eval -- "$WHITTLE" eval "$MODEL" --data "$DATA" --batch 50
expect_ok run -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/out.npz"
expect_ok run-tensors -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/tensors.npz" --tensors "relu1, bn1"
expect_error run-tensors-unknown "no_such_tensor" -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/o.npz" --tensors "relu1,no_such_tensor"
expect_error run-tensors-empty "no tensor names" -- "$WHITTLE" run "$MODEL" --input "$DATA" --output "$WORK/o.npz" --tensors ","
expect_ok bench -- "$WHITTLE" bench "$MODEL" --batch 8 --repeats 3
expect_ok help-run -- "$WHITTLE" run --help
expect_ok no-arguments -- "$WHITTLE"
expect_ok report -- "$WHITTLE" report --profile "$WORK/profile.json" --out "$WORK/report.html" --samples 8
grep -q "<svg" "$WORK/report.html" 2>/dev/null || { failed=$((failed + 1)); echo "FAIL  report has no charts"; }
ls "$WORK"/*.tmp* >/dev/null 2>&1 && { failed=$((failed + 1)); echo "FAIL  temporary files left behind"; }

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
