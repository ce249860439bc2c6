# Sourced by the tests that drive the real window (tests/e2e/desktop_test.sh,
# tests/install/package_test.sh): a display of their own with openbox, polling, and the cleanup
# of what they started. The caller sets WORK (its temp folder, removed when the test passes) and
# defines fail(); APP_PID is the app under test, once started.
XVFB_PID="" WM_PID="" APP_PID=""

x11_cleanup() {
  local rc=$?
  for pid in "$APP_PID" "$WM_PID" "$XVFB_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "kept for a look: $WORK"; fi
}
trap x11_cleanup EXIT

# wait_for <seconds> <what> <command...>: polls the command every 0.1 s until it succeeds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ -n "$APP_PID" ] && ! kill -0 "$APP_PID" 2>/dev/null && fail "lmworkbench exited while waiting for $what"
    [ "$SECONDS" -ge "$end" ] && fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

# start_display: Xvfb on a free display (ctest runs other GUI tests at once) with room for a
# 1280x800 window and its frame, and openbox managing it; exports DISPLAY.
start_display() {
  exec 3>"$WORK/display"
  Xvfb -displayfd 3 -screen 0 1440x960x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
  XVFB_PID=$!
  exec 3>&-
  wait_for 20 "Xvfb to start" grep -q '[0-9]' "$WORK/display"
  export DISPLAY=":$(head -1 "$WORK/display")"
  openbox --sm-disable >"$WORK/openbox.log" 2>&1 &
  WM_PID=$!
  wait_for 20 "openbox to manage the display" xdotool get_num_desktops
}
