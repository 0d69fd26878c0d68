#!/usr/bin/env bash
# End-to-end check of the workbench in a real terminal (tmux): opens the bundled sample,
# moves through the panels, moves a slider with the keys and drags another with the mouse
# (xterm SGR reports), runs auto-select (greedy search on 32 evaluation samples) while
# measuring keypress-to-frame (outside through tmux, and inside the program with
# --frame-stats), checks that the score column fills in while the search runs and that the
# changed session is autosaved (every second here), takes two snapshots, saves a profile,
# exports ONNX from the command palette and encodings (version 2.0.0) and an HTML report from
# the Export panel, quantizes (per-layer SQNR on every layer), quits, and checks the files and
# that the terminal was restored (stty settings, alternate screen, mouse and keypad modes).
# Usage: Scripts/check-tui.sh [path/to/whittle]
set -euo pipefail
BIN=$(realpath "${1:-.build/release/whittle}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v tmux >/dev/null || { echo "check-tui: tmux is not installed (make deps)"; exit 1; }
WORK=$(mktemp -d)
SESSION="whittle-check-$$"
# A private tmux server: sessions of other tmux users (and their server shutting down) cannot race with this one.
SOCKET="whittle-check-$$"
trap 'tmux -L "$SOCKET" kill-server 2>/dev/null || true; rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCKET"; rm -rf "$WORK"' EXIT
fail() { echo "check-tui: FAIL: $*"; echo "--- screen ---"; tmux -L "$SOCKET" capture-pane -p -t "$SESSION" 2>/dev/null || true; exit 1; }
screen() { tmux -L "$SOCKET" capture-pane -p -t "$SESSION"; }
# Waits until the screen shows $1 (fixed-string match), up to 10 s.
wait_for() {
  for _ in $(seq 1 100); do
    if screen | grep -qF -- "$1"; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for: $1"
}
keys() { tmux -L "$SOCKET" send-keys -t "$SESSION" "$@"; }
# Waits until the screen shows $1, up to $2 seconds.
wait_long() {
  for _ in $(seq 1 $(( $2 * 10 ))); do
    if screen | grep -qF -- "$1"; then return 0; fi
    sleep 0.1
  done
  fail "timed out after $2 s waiting for: $1"
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Sends key $1 and prints the milliseconds until the screen changes (tmux round trip included).
latency() {
  local before after start
  before=$(screen); start=$(now_ms)
  keys "$1"
  for _ in $(seq 1 2000); do
    after=$(screen)
    [ "$after" != "$before" ] && { echo $(( $(now_ms) - start )); return 0; }
  done
  echo -1
}

cp "$ROOT"/SampleModels/digits-cnn.onnx "$WORK"/model.onnx
# tmux's view of the terminal modes the program left set.
modes() { tmux -L "$SOCKET" display -p -t "$SESSION" 'alt=#{alternate_on} mouse=#{mouse_any_flag} drag=#{mouse_button_flag} keypad=#{keypad_cursor_flag} cursor=#{cursor_flag}'; }
tmux -L "$SOCKET" new-session -d -s "$SESSION" -x 120 -y 36 \
  "cd '$WORK' && printf 'BEFORE\n' && stty -g > '$WORK/stty.before' && WHITTLE_SAMPLES='$ROOT/SampleModels' WHITTLE_FRAME_LOG='$WORK/timing.log' WHITTLE_AUTOSAVE_SECONDS=1 TERM=xterm-256color '$BIN' tui model.onnx --eval-samples 32 --cache-dir '$WORK/cache' --data '$ROOT/SampleModels/digits-calib.npz' --eval-data '$ROOT/SampleModels/digits-test.npz' --profile '$WORK/session.json' --frame-stats 2>'$WORK/frame-stats.txt'; echo \"EXIT=\$?\"; stty -g > '$WORK/stty.after'; sleep 30"
wait_for "1 Layers"
wait_for "conv1"
keys 2;  wait_for "weights"
wait_for "activations  "
[ "$(modes)" = "alt=1 mouse=1 drag=1 keypad=1 cursor=0" ] || fail "terminal modes while running: $(modes) (want button-motion mouse tracking for slider drags)"
keys 3;  wait_for "target MAC ratio"; keys Down; keys Left; keys Left; wait_for "0.9"
# Mouse: press on conv4's slider (4th layer row: screen row 10, counted from 1), drag it left,
# release (xterm SGR reports, as a terminal sends them in button-motion mode).
keys -l $'\e[<0;80;10M'; keys -l $'\e[<32;60;10M'; keys -l $'\e[<32;52;10M'; keys -l $'\e[<0;52;10m'
for _ in $(seq 1 50); do screen | grep -E '^│conv4 .* 0\.[0-9]+ ' >/dev/null && break; sleep 0.1; done
screen | grep -E '^│conv4 .* 0\.[0-9]+ ' >/dev/null || fail "dragging conv4's slider with the mouse did not change its ratio"
# The slider change is autosaved (WHITTLE_AUTOSAVE_SECONDS=1) without any :save.
for _ in $(seq 1 50); do [ -s "$WORK/session.autosave.json" ] && break; sleep 0.1; done
[ -s "$WORK/session.autosave.json" ] || fail "the changed session was not autosaved"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["compression"]["ratios"]; assert r and min(r.values()) < 1, r' "$WORK/session.autosave.json" \
  || fail "the autosave lacks the slider change"
keys a;  wait_for "auto-select running"
lat=""
streamed=no
for _ in 1 2 3 4 5; do
  screen | grep -qF "auto-select running" || break
  # A score in the score column while the search still runs: streamed, not only at the end.
  if screen | grep -F "auto-select running" >/dev/null && screen | grep -E '^│conv[0-9].* [0-9]\.[0-9]{3}│' >/dev/null; then streamed=yes; fi
  lat="$lat $(latency Down)"
  lat="$lat $(latency Up)"
done
wait_long "exact" 180
screen | grep -q "failed" && fail "auto-select failed"
keys s;  wait_for "snapshot name"; keys Enter; wait_for "snapshot 'snapshot-1' taken"
keys Left; keys s; wait_for "snapshot name"; keys BSpace; keys -l "b"; keys Enter; wait_for "snapshot 'snapshot-b' taken"
keys 5;  wait_for "2 snapshots"
keys e;  wait_for "evaluat"
keys 6;  wait_for "evaluate"
# Let the evaluation finish first: its result message would replace the save confirmation.
wait_long "evaluate · top-1" 120
keys ?;  wait_for "Keys · Jobs"; keys Escape
keys :;  wait_for "Command"; keys -l "save"; keys Enter; wait_for "saved session profile"
keys 3;  for _ in 1 2 3 4 5 6 7 8 9 10 11; do keys Right; done
keys 1;  keys :; keys -l "export onnx $WORK/float.onnx"; keys Enter; wait_for "wrote onnx"
# Export panel: encodings 2.0.0 and the report into the model's folder ($WORK).
keys 7;  wait_for "encodings version"; keys Right; wait_for "‹2.0.0›"
keys n;  wait_long "wrote encodings" 60
keys r;  wait_long "wrote report" 60
keys 7;  screen | grep -E '^│ n  encodings .*✔ written' >/dev/null || fail "the Export panel does not show the encodings as written"
screen | grep -E '^│ r  HTML report .*✔ written' >/dev/null || fail "the Export panel does not show the report as written"
keys 4;  keys :; keys -l "quantize"; keys Enter; wait_long "sqnr: top-1" 60
screen > "$WORK/quant-screen.txt"
# Every quantized layer of the sample shows its SQNR (no "-" in the SQNR column).
for layer in conv1 conv2 conv3 conv4 fc; do
  grep -E "\b$layer +[0-9]+ +[0-9]+ +-?[0-9.]+dB" "$WORK/quant-screen.txt" >/dev/null || { cat "$WORK/quant-screen.txt"; fail "no per-layer SQNR for $layer"; }
done
keys C-l
keys q;  wait_for "EXIT=0"
screen | grep -q "BEFORE" || fail "the shell screen was not restored after quit"
screen | grep -q "1 Layers" && fail "the workbench is still on screen after quit"
for _ in $(seq 1 30); do [ -s "$WORK/stty.after" ] && break; sleep 0.1; done
cmp -s "$WORK/stty.before" "$WORK/stty.after" || fail "terminal settings (stty) differ after quit"
[ "$(modes)" = "alt=0 mouse=0 drag=0 keypad=0 cursor=1" ] || fail "terminal modes after quit: $(modes)"
[ -s "$WORK/float.onnx" ] || fail "export onnx wrote nothing"
[ -s "$WORK/session.json" ] || fail "no session profile"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == "2.0.0" and d["encodings"], d.get("version")' "$WORK/model-encodings.json" \
  || fail "the encodings file (Export panel, version 2.0.0) does not parse or has no encodings"
for section in sensitivity ratios ranges quantization snapshots; do
  grep -q "<section id=\"$section\">" "$WORK/model-report.html" || fail "the report has no $section section"
done
[ "$(grep -o '<svg' "$WORK/model-report.html" | wc -l)" -ge 4 ] || fail "the report has fewer than 4 SVG charts"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 3 and d["exports"]["encodingsVersion"] == "2.0.0", d.get("exports")' "$WORK/session.json" \
  || fail "the profile lacks the encodings version chosen in the Export panel"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["compression"]["ratios"]; assert r and min(r.values()) < 1, r' "$WORK/session.json" \
  || fail "auto-select left no ratios in the profile"
grep -q '"snapshot-b"' "$WORK/session.json" || fail "profile lacks the second snapshot"
grep -q '"snapshot-1"' "$WORK/session.json" || fail "profile lacks the first snapshot"
[ -e "$WORK/session.autosave.json" ] && fail "the autosave was not removed after the profile was saved on quit"
grep -q "input to frame" "$WORK/frame-stats.txt" || fail "--frame-stats printed nothing"
# Resume: the profile opens again with its snapshots.
# The same pane runs it (a kill-session and new-session pair can race with the server's exit:
# "server exited unexpectedly").
tmux -L "$SOCKET" resize-window -t "$SESSION" -x 80 -y 24
tmux -L "$SOCKET" respawn-pane -k -t "$SESSION" "cd '$WORK' && clear && stty -g > '$WORK/stty.before2' && TERM=xterm-256color '$BIN' tui --profile '$WORK/session.json' --no-unicode --no-color; echo \"EXIT=\$?\"; stty -g > '$WORK/stty.after2'; sleep 30"
wait_for "1 Layers"
keys 5; wait_for "2 snapshots"
# --no-unicode: ASCII only.
screen | LC_ALL=C grep -q '[^ -~]' && fail "non-ASCII characters on the screen with --no-unicode"
# Too small, then back.
tmux -L "$SOCKET" resize-window -t "$SESSION" -x 50 -y 12 2>/dev/null || true
wait_for "terminal too small"
tmux -L "$SOCKET" resize-window -t "$SESSION" -x 80 -y 24 2>/dev/null || true
wait_for "5 Compare"
# SIGTERM restores the terminal too.
pid=$(pgrep -n -f "$BIN tui --profile $WORK/session.json" || true)
[ -n "$pid" ] || fail "no workbench process"
kill -TERM "$pid"
wait_for "EXIT="
screen | grep -q "Compare" && fail "screen not restored after SIGTERM"
for _ in $(seq 1 30); do [ -s "$WORK/stty.after2" ] && break; sleep 0.1; done
cmp -s "$WORK/stty.before2" "$WORK/stty.after2" || fail "terminal settings (stty) differ after SIGTERM"
[ "$(modes)" = "alt=0 mouse=0 drag=0 keypad=0 cursor=1" ] || fail "terminal modes after SIGTERM: $(modes)"
# Plain `whittle` (no arguments) opens the workbench on the bundled sample with its data.
tmux -L "$SOCKET" respawn-pane -k -t "$SESSION" "cd '$WORK' && clear && TERM=xterm-256color '$BIN'; echo \"PLAIN-EXIT=\$?\"; sleep 30"
wait_for "digits_cnn"
wait_for "1 Layers"
keys 6; wait_for "✔ activation statistics"
keys q; wait_for "PLAIN-EXIT=0"
startup=$(grep -m1 startup_ms "$WORK/timing.log" | awk '{print $2}')
frames=$(grep -c '^frame' "$WORK/timing.log")
busy=$(awk '$1 == "frame" && $8 > 0 { n++; s += $4 + $6; if ($4 + $6 > m) m = $4 + $6 } END { if (n) printf "%d frames with a job running, render+write mean %.2f ms, max %.2f ms", n, s / n, m; else print "no frames with a job running" }' "$WORK/timing.log")
echo "check-tui: ok (startup to first frame ${startup} ms, ${frames} frames; keypress-to-screen during auto-select (ms, tmux round trip included):${lat:- none}; $busy; scores seen while running: $streamed)"
sed 's/^/check-tui: in-program /' "$WORK/frame-stats.txt"
