#!/usr/bin/env bash
# curl against a real `lmw serve` on a free loopback port: models, simple chat, multi-turn chat
# (temperature 0.7, stream false; max_tokens 1024 is a 400), streaming chat, and a few error answers.
# Usage: curl_test.sh <lmw binary> <model dir>
set -euo pipefail
LMW=$1
MODEL=$2
source "$(dirname "$0")/serve_lib.sh"

# 1. list models
curl -sS -f "$URL/v1/models" -o "$WORK/models.json"
[ "$(json "$WORK/models.json" 'j.data[0].id')" = "stories260K" ] || fail "models: $(cat "$WORK/models.json")"
ok "GET /v1/models lists stories260K"

# 2. simple chat
curl -sS -f "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"temperature":0,"max_tokens":32}' \
  -o "$WORK/chat.json"
[ "$(json "$WORK/chat.json" 'j.object')" = "chat.completion" ] || fail "chat: $(cat "$WORK/chat.json")"
[ "$(json "$WORK/chat.json" 'j.choices[0].message.content.length > 0')" = "true" ] || fail "empty answer"
[ "$(json "$WORK/chat.json" 'j.usage.completion_tokens <= 32')" = "true" ] || fail "max_tokens not honoured"
ok "simple chat: $(json "$WORK/chat.json" 'JSON.stringify(j.choices[0].message.content.slice(0,60))')"

# 3. multi-turn chat, temperature 0.7, stream false: max_tokens 1024 is more than the 512-token
#    context, a 400 (as OpenAI answers); with max_tokens 400 it answers.
multi() {
  echo '{
  "model": "stories260K", "temperature": 0.7, "max_tokens": '"$1"', "stream": false,
  "messages": [
    {"role": "system", "content": "You are a storyteller."},
    {"role": "user", "content": "Tell me about a cat."},
    {"role": "assistant", "content": "Once upon a time there was a cat named Tom."},
    {"role": "user", "content": "What did Tom do?"}]}'
}
code=$(curl -sS -o "$WORK/multi.json" -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$(multi 1024)")
[ "$code" = 400 ] && [ "$(json "$WORK/multi.json" 'j.error.param + " " + j.error.code')" = "max_tokens context_length_exceeded" ] \
  || fail "max_tokens 1024: $code $(cat "$WORK/multi.json")"
curl -sS -f "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$(multi 400)" -o "$WORK/multi.json"
[ "$(json "$WORK/multi.json" '["stop","length"].includes(j.choices[0].finish_reason)')" = "true" ] || fail "multi-turn: $(cat "$WORK/multi.json")"
[ "$(json "$WORK/multi.json" 'j.usage.total_tokens <= 512 && j.usage.prompt_tokens > 20')" = "true" ] || fail "multi-turn usage"
ok "multi-turn chat (temperature 0.7): max_tokens 1024 is a 400, 400 answers with finish_reason $(json "$WORK/multi.json" 'j.choices[0].finish_reason')"

# 4. streaming chat
curl -sS -N -f "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"temperature":0,"max_tokens":32,"stream":true}' \
  -D "$WORK/stream.hdr" -o "$WORK/stream.txt"
grep -qi '^content-type: text/event-stream' "$WORK/stream.hdr" || fail "stream content type: $(cat "$WORK/stream.hdr")"
first=$(head -1 "$WORK/stream.txt")
grep -q '^data: {.*"delta":{"content":"","role":"assistant"}' <<<"$first" || fail "first chunk: $first"
[ "$(tail -2 "$WORK/stream.txt")" = "data: [DONE]" ] || fail "stream end: $(tail -3 "$WORK/stream.txt")"
grep -c '^data: ' "$WORK/stream.txt" >/dev/null
# the streamed text equals the non-streamed greedy answer
node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").split("\n\n").filter(Boolean);
let text = "", finish = null;
for (const l of lines) { if (l === "data: [DONE]") continue; const c = JSON.parse(l.slice(6)); text += c.choices[0].delta.content ?? ""; finish = c.choices[0].finish_reason ?? finish; }
const whole = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).choices[0];
if (text !== whole.message.content || finish !== whole.finish_reason) { console.log("stream:", JSON.stringify(text), finish, "whole:", JSON.stringify(whole)); process.exit(1); }
' "$WORK/stream.txt" "$WORK/chat.json" || fail "streamed text differs from the non-streamed answer"
ok "streaming chat: $(grep -c '^data: ' "$WORK/stream.txt") events, role first, [DONE] last, same text"

# 5. errors
code=$(curl -sS -o "$WORK/e.json" -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"temperature":9}')
[ "$code" = 400 ] && [ "$(json "$WORK/e.json" 'j.error.param')" = "temperature" ] || fail "temperature 9: $code $(cat "$WORK/e.json")"
code=$(curl -sS -o "$WORK/e.json" -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
[ "$code" = 404 ] && [ "$(json "$WORK/e.json" 'j.error.code')" = "model_not_found" ] || fail "unknown model: $code"
code=$(curl -sS -o "$WORK/e.json" -w '%{http_code}' -X DELETE "$URL/v1/models")
[ "$code" = 405 ] || fail "DELETE /v1/models: $code"
code=$(curl -sS -o "$WORK/e.json" -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d '{"model":')
[ "$code" = 400 ] && [ "$(json "$WORK/e.json" 'j.error.code')" = "invalid_json" ] || fail "broken JSON: $code"
ok "errors: 400 temperature, 404 model, 405 method, 400 broken JSON"

# 6. health, metrics, docs
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] || fail "health"
curl -sS -f "$URL/metrics" -o "$WORK/metrics.txt"
grep -q '^lmw_http_requests_total{endpoint="/v1/chat/completions",status="200"} 3$' "$WORK/metrics.txt" || fail "metrics: $(grep requests_total "$WORK/metrics.txt")"
curl -sS -f "$URL/openapi.json" -o "$WORK/openapi.json"
[ "$(json "$WORK/openapi.json" 'j.openapi.startsWith("3.") && Object.keys(j.paths).length >= 7')" = "true" ] || fail "openapi.json"
curl -sS -f "$URL/" -o "$WORK/index.html"
grep -q '<title>LM Workbench API</title>' "$WORK/index.html" || fail "docs page"
ok "health, metrics, openapi.json, docs page"

kill -TERM $PID
wait $PID || fail "lmw serve exit code $? after SIGTERM"
PID=
grep -q 'stopped' "$WORK/err" || fail "no clean shutdown message"
ok "SIGTERM: clean shutdown"
echo "$passed passed, 0 failed"
