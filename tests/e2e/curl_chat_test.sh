#!/usr/bin/env bash
# curl against `lmw serve` on a model with a reference.json chat_cases list (qwen3-tiny, llama3-tiny):
# the model's own chat template, with chat_template_kwargs, gives transformers' prompt length; the
# streamed text equals the non-streamed greedy answer.
# Usage: curl_chat_test.sh <lmw binary> <model dir>
set -euo pipefail
LMW=$1
MODEL=$2
NAME=$(basename "$MODEL")
source "$(dirname "$0")/serve_lib.sh"

# The request body of reference chat case 0 (messages + chat_template_kwargs), and its token count.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1] + "/reference.json", "utf8"));
const c = r.chat_cases[0];
process.stdout.write(JSON.stringify({ model: process.argv[2], messages: c.messages, chat_template_kwargs: c.kwargs,
                                      temperature: 0, max_tokens: 16 }));
' "$MODEL" "$NAME" >"$WORK/body.json"
want=$(node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1] + "/reference.json", "utf8")).chat_cases[0].ids.length))' "$MODEL")

curl -sS -f "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d @"$WORK/body.json" -o "$WORK/chat.json"
[ "$(json "$WORK/chat.json" 'j.usage.prompt_tokens')" = "$want" ] || fail "prompt tokens: $(cat "$WORK/chat.json") want $want"
[ "$(json "$WORK/chat.json" 'j.usage.completion_tokens > 0')" = "true" ] || fail "no completion: $(cat "$WORK/chat.json")"
ok "chat with chat_template_kwargs: $want prompt tokens as transformers renders"

node -e 'const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); b.stream = true; process.stdout.write(JSON.stringify(b))' \
  "$WORK/body.json" >"$WORK/sbody.json"
curl -sS -N -f "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d @"$WORK/sbody.json" -o "$WORK/stream.txt"
[ "$(tail -2 "$WORK/stream.txt")" = "data: [DONE]" ] || fail "stream end: $(tail -3 "$WORK/stream.txt")"
node -e '
const fs = require("fs");
let text = "";
for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n\n").filter(Boolean)) {
  if (l === "data: [DONE]") continue; text += JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? ""; }
const whole = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).choices[0].message.content;
if (text !== whole) { console.log("stream:", JSON.stringify(text), "whole:", JSON.stringify(whole)); process.exit(1); }
' "$WORK/stream.txt" "$WORK/chat.json" || fail "streamed text differs"
ok "streaming chat gives the same text"

code=$(curl -sS -o "$WORK/e.json" -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\":\"$NAME\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":[1]}")
[ "$code" = 400 ] && [ "$(json "$WORK/e.json" 'j.error.param')" = "chat_template_kwargs" ] || fail "bad kwargs: $code $(cat "$WORK/e.json")"
ok "chat_template_kwargs that is not an object: 400"

kill -TERM $PID
wait $PID || fail "lmw serve exit code $? after SIGTERM"
PID=
ok "SIGTERM: clean shutdown"
echo "$passed passed, 0 failed"
