#!/usr/bin/env bash
# The real desktop app, driven like a user: its own Xvfb display with openbox as the window manager,
# lmworkbench on stories260K (CPU) in a throwaway profile, keys and clicks from xdotool, pictures
# from scrot. It goes through:
#   1. the quantize wizard: types the source and output folders key by key (each field once lost
#      its focus after one character) and quantizes to the typed folder;
#   2. a chat past the context: a 128-token session, Truncate the middle and Max tokens 24 chosen
#      in the tab, messages until a reply's prompt had to leave earlier messages out;
#   3. history: Ctrl+W closes the chat (kept, "open": false), the History search finds it and
#      Enter reopens it in a tab, where the next message lands;
#   4. screenshots of each view (Chat, History, Models, Server, Quantize) at 1280x800 and at the
#      window's minimum size (960x640; a smaller resize must not go below it).
# Pictures go to $LMW_SCREENSHOT_DIR when set (else a temp folder, removed when the test passes).
# Usage: desktop_test.sh <lmworkbench binary> <model dir>; exit 77 (skip) when a tool is missing.
set -euo pipefail
APP=$1
MODEL=$2
for tool in Xvfb openbox xdotool scrot node; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

WORK=$(mktemp -d /tmp/lmw-desktop.XXXXXX)
PROFILE=$WORK/profile
SHOTS=${LMW_SCREENSHOT_DIR:-$WORK/shots}
mkdir -p "$SHOTS" "$PROFILE/LMWorkbench" "$WORK/xdg"
chmod 700 "$WORK/xdg"
STEP="start" PASSED=0 W=""
. "$(dirname "$0")/x11_lib.sh"

fail() {
  echo "FAIL at step '$STEP': $*"
  if [ -n "${DISPLAY:-}" ] && [ -n "$XVFB_PID" ]; then
    scrot -o "$WORK/failure.png" 2>/dev/null && echo "screen at the failure: $WORK/failure.png"
  fi
  if [ -f "$WORK/app.err" ]; then echo "--- lmworkbench stderr (last 30 lines)"; tail -30 "$WORK/app.err"; fi
  exit 1
}
ok() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $*"; }
# js <file> <expression on j>: the value of a JavaScript expression on a JSON file.
js() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); process.stdout.write(String('"$2"'))' "$1"; }
js_true() { [ "$(js "$1" "$2" 2>/dev/null)" = "true" ]; }

# --- display, window manager, app
STEP="display"
start_display
ok "Xvfb on $DISPLAY with openbox"

STEP="launch"
# A short session makes "past the context" a few messages away (the Models view's Session length).
printf '[engine]\nsessionLen=128\nbackend=cpu\n' >"$PROFILE/LMWorkbench/lmworkbench.ini"
XDG_RUNTIME_DIR=$WORK/xdg QT_QPA_PLATFORM=xcb "$APP" --profile "$PROFILE" "$MODEL" >"$WORK/app.out" 2>"$WORK/app.err" &
APP_PID=$!
# The title names the model once it is loaded.
wait_for 60 "the window titled 'stories260K — LM Workbench'" xdotool search --onlyvisible --name '^stories260K — LM Workbench$'
W=$(xdotool search --onlyvisible --name '^stories260K — LM Workbench$' | head -1)
xdotool windowactivate --sync "$W"
eval "$(xdotool getwindowgeometry --shell "$W")"
[ "$WIDTH" = 1280 ] && [ "$HEIGHT" = 800 ] || fail "the window opened at ${WIDTH}x${HEIGHT}, not 1280x800"
ok "lmworkbench loaded stories260K in a 1280x800 window"

# PNG width and height from its IHDR chunk.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }
# shot <name>: the focused window's contents (no frame) as $SHOTS/desktop-<name>.png, checked for size.
shot() {
  local file="$SHOTS/desktop-$1.png"
  xdotool windowactivate --sync "$W"
  sleep 0.4  # let a view switch or a resize paint
  scrot -u -o "$file" || fail "scrot could not save $file"
  eval "$(xdotool getwindowgeometry --shell "$W")"
  [ "$(png_size "$file")" = "${WIDTH}x${HEIGHT}" ] || fail "$file is $(png_size "$file"), the window ${WIDTH}x${HEIGHT}"
  echo "  picture: $file"
}
key() { xdotool key --delay 60 "$@"; }
type_text() { xdotool type --delay 25 "$1"; }
click() { xdotool mousemove --window "$W" "$1" "$2" click 1; }
SIDEBAR_CHAT=(52 55)  # the sidebar's first item (Chat); the sidebar has a fixed width

# --- 1. quantize wizard: typed paths
STEP="wizard: source folder"
OUT=$WORK/out/typed/stories260K-awq-int4
key ctrl+4
sleep 0.3
click 400 118  # the source folder field, under the page title
key ctrl+a BackSpace
type_text "$MODEL"
sleep 1  # the page reads the folder in the background before Next is enabled
key alt+n
STEP="wizard: output folder"
sleep 0.5  # the output page puts the focus in its field
key ctrl+a BackSpace
type_text "$OUT"
key alt+n
STEP="wizard: settings"
shot quantize-settings-1280
# Fewer calibration samples, shorter: the same AWQ path in seconds.
click 700 264  # Samples
key ctrl+a
type_text 16
key Tab ctrl+a  # Sequence length
type_text 64
key alt+n
STEP="wizard: quantizing to the typed folder"
wait_for 90 "$OUT/quantization_report.json (the typed output folder)" test -f "$OUT/quantization_report.json"
js_true "$OUT/config.json" '!!j.quantization_config && j.quantization_config.bits === 4' \
  || fail "$OUT/config.json has no 4-bit quantization_config: $(cat "$OUT/config.json")"
ls "$OUT"/*.safetensors >/dev/null 2>&1 || fail "no *.safetensors in $OUT"
# The report names the typed folder and the typed calibration size (16 samples of 64 tokens).
js_true "$OUT/quantization_report.json" "j.out_dir === '$OUT' && j.method === 'awq' && j.calibration.includes('16 x 64')" \
  || fail "the report does not match what was typed: $(head -c 300 "$OUT/quantization_report.json")"
ok "the wizard took the typed paths and numbers whole and quantized to $OUT"
sleep 1  # the result page fills in after the files are written
shot quantize-1280

# --- 2. chat past the context with Truncate the middle
STEP="chat: settings"
key ctrl+1
click "${SIDEBAR_CHAT[@]}"
# Alt+X (the Context box's mnemonic) focuses its policy combo; Down picks the next policy.
key alt+x Down
conv_with() { grep -l "$1" "$PROFILE"/conversations/*.json; }
wait_for 5 "the conversation file to say context_overflow truncate-middle" conv_with '"context_overflow": "truncate-middle"'
CONV=$(conv_with '"context_overflow": "truncate-middle"' | head -1)
# Alt+T (the Max tokens label's mnemonic) focuses that box.
key alt+t ctrl+a
type_text 24
wait_for 5 "max_tokens 24 in $CONV" js_true "$CONV" 'j.sampling.max_tokens === 24'
ok "the Context combo set Truncate the middle and Max tokens 24 ($(basename "$CONV"))"

STEP="chat: messages"
eval "$(xdotool getwindowgeometry --shell "$W")"
click 400 $((HEIGHT - 82))  # the message box, at the bottom of the chat
prompts=("Tell me a story about a cat." "What did the cat do next?" "Where did the dog go?" "Who was in the park?"
         "What did the girl see?" "Why was the bird sad?" "What did mom say?" "How did the day end?"
         "What did they eat?" "Where is the ball?")
dropped=0
for i in "${!prompts[@]}"; do
  type_text "${prompts[$i]}"
  key Return
  n=$((2 * (i + 1)))
  wait_for 30 "reply $((i + 1)) to finish" js_true "$CONV" \
    "j.messages.length === $n && j.messages[$n - 1].role === 'assistant' && !!j.messages[$n - 1].stats"
  err=$(js "$CONV" 'j.messages.filter(m => m.error).map(m => m.error).join("; ")')
  [ -z "$err" ] || fail "a reply failed: $err"
  dropped=$(js "$CONV" "j.messages[$n - 1].stats.dropped_messages || 0")
  if [ "$dropped" -gt 0 ]; then
    [ "$(js "$CONV" "j.messages[$n - 1].stats.completion_tokens")" -gt 0 ] || fail "the reply after the context filled is empty"
    break
  fi
done
[ "$dropped" -gt 0 ] || fail "after ${#prompts[@]} messages no reply left anything out: $(js "$CONV" 'JSON.stringify(j.messages.map(m => m.stats))')"
turns=$(js "$CONV" 'j.messages.length / 2')
ok "chatted past the 128-token context: reply $turns left $dropped earlier messages out, no errors ($(js "$CONV" "JSON.stringify(j.messages[j.messages.length - 1].stats)"))"
shot chat-1280
key ctrl+2
shot models-1280
key ctrl+3
shot server-1280

# --- 3. close the chat, reopen it from History
STEP="history: close"
key ctrl+1
key ctrl+w
wait_for 5 "\"open\": false in $CONV after Ctrl+W" js_true "$CONV" 'j.open === false'
[ "$(js "$CONV" 'j.messages.length')" = $((2 * turns)) ] || fail "closing the tab changed the messages"
ok "Ctrl+W closed the tab and kept the conversation (open: false)"
STEP="history: search"
click "${SIDEBAR_CHAT[@]}"
key Tab  # the History search field
type_text cat
shot history-1280
STEP="history: reopen"
key Tab Return  # into the list (its first match gets the focus), Enter opens it
wait_for 5 "$CONV to be open again" js_true "$CONV" 'j.open !== false'
ok "Enter in the History list reopened it"
# The reopened tab is the current one with the focus in its message box: what is typed now lands in it.
type_text "The end."
key Return
wait_for 30 "a reply in the reopened conversation" js_true "$CONV" \
  "j.messages.length === $((2 * turns + 2)) && j.messages[$((2 * turns))].content === 'The end.' && !!j.messages[$((2 * turns + 1))].stats"
ok "the reopened conversation is the window's current tab (a message typed there got its reply)"

# --- 4. the minimum size
STEP="minimum size"
xdotool windowsize "$W" 640 400
sleep 0.5
eval "$(xdotool getwindowgeometry --shell "$W")"
[ "$WIDTH" -ge 960 ] && [ "$HEIGHT" -ge 640 ] || fail "the window went down to ${WIDTH}x${HEIGHT}, below its minimum 960x640"
xdotool windowsize "$W" 960 640
wait_for 5 "the window to be 960x640" bash -c "xdotool getwindowgeometry '$W' | grep -q 'Geometry: 960x640'"
ok "the window stops at its minimum size 960x640"
key ctrl+1
click "${SIDEBAR_CHAT[@]}"
key Tab ctrl+a BackSpace  # History shows every chat again
shot chat-min
type_text cat
shot history-min
key ctrl+a BackSpace
key ctrl+2
shot models-min
key ctrl+3
shot server-min
key ctrl+4
shot quantize-min

STEP="quit"
key ctrl+q
for _ in $(seq 1 50); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$APP_PID" 2>/dev/null && fail "lmworkbench did not quit on Ctrl+Q"
wait "$APP_PID" || fail "lmworkbench exited with status $?"
APP_PID=""
ok "Ctrl+Q quit cleanly"
echo "$PASSED passed, 0 failed"
