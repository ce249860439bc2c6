# Sourced by the curl tests: starts `lmw serve "$MODEL"` on a free loopback port (CPU), sets URL and
# PID, stops it on exit; fail, json and ok helpers. Needs LMW and MODEL set, and `set -euo pipefail`.
WORK=$(mktemp -d)
cleanup() {
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; [ -f "$WORK/err" ] && tail -20 "$WORK/err"; exit 1; }
# json <file> <js expression on j>: prints the value
json() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=('"$2"'); process.stdout.write(String(v))' "$1"; }

"$LMW" serve "$MODEL" --server-name 127.0.0.1 --server-port 0 --backend cpu >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 600); do
  URL=$(grep -o 'at http://[^ ]*' "$WORK/out" | head -1 | cut -c4- || true)
  [ -n "$URL" ] && break
  kill -0 $PID 2>/dev/null || fail "lmw serve exited"
  sleep 0.1
done
[ -n "$URL" ] || fail "no URL printed"
echo "server at $URL"
passed=0
ok() { passed=$((passed + 1)); echo "ok $passed - $*"; }
