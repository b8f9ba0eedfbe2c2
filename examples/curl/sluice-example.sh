#!/usr/bin/env bash
# Sluice with curl: Connect JSON (POST /sluice.v1.ChatService/<Method>) and the
# OpenAI-compatible SSE route. A unary Complete, a stream printed as it arrives (curl -N),
# google.rpc.ErrorInfo and RetryInfo read from errors, a deadline, and a cancelled stream.
# It calls the gateway at SLUICE_URL (default http://127.0.0.1:8080) with the API key in
# SLUICE_API_KEY (if set). Needs bash, curl, sed and grep; no jq.
set -euo pipefail
export LC_ALL=C # byte lengths for the Connect envelope

url="${SLUICE_URL:-http://127.0.0.1:8080}"
auth=()
[ -n "${SLUICE_API_KEY:-}" ] && auth=(-H "authorization: Bearer $SLUICE_API_KEY")
connect="$url/sluice.v1.ChatService"

request() { # model, text → a CompleteRequest in JSON
  printf '{"model":"%s","messages":[{"role":"ROLE_USER","content":[{"text":"%s"}]}]}' "$1" "$2"
}
# A Connect error's fields, from its JSON body: the code ("not_found" → NOT_FOUND), and the
# ErrorInfo reason / domain and RetryInfo delay from the details' "debug" (each detail also
# carries "value", the message in base64 protobuf).
code_of() { sed -n 's/^{"code":"\([a-z_]*\)".*/\1/p' | tr a-z A-Z; }
field_of() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | sed 's/.*:"\(.*\)"/\1/'; }

# Unary: Connect JSON is a plain POST; HTTP 200 and the CompleteResponse.
answer=$(curl -sS "${auth[@]}" -H 'content-type: application/json' "$connect/Complete" \
  -d "$(request demo 'Hello from curl')")
printf 'complete: %s\n' "$(printf '%s' "$answer" | sed -n 's/.*"content":\[{"text":"\(\([^"\\]\|\\.\)*\)"}.*/\1/p' | sed 's/\\"/"/g')"

# Streaming over the OpenAI-compatible route: server-sent events, printed as they arrive (-N: no buffering).
printf 'stream: '
curl -sSN "${auth[@]}" -H 'content-type: application/json' "$url/v1/chat/completions" \
  -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"Hello from curl"}]}' |
  while IFS= read -r line; do
    case "$line" in
      'data: [DONE]') break ;;
      data:*'"finish_reason":"'*) printf '\nstream done: %s\n' "$(printf '%s' "$line" | field_of finish_reason)" ;;
      data:*'"content":"'*) printf '%s' "$(printf '%s' "$line" | sed -n 's/.*"content":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\"/"/g')" ;;
    esac
  done

# An unknown model: HTTP 404, code not_found, google.rpc.ErrorInfo in the details.
error=$(curl -sS "${auth[@]}" -H 'content-type: application/json' "$connect/Complete" \
  -d "$(request no-such-model 'Hello from curl')")
printf 'not found: %s %s (domain %s)\n' "$(printf '%s' "$error" | code_of)" \
  "$(printf '%s' "$error" | field_of reason)" "$(printf '%s' "$error" | field_of domain)"

# Model "limited" allows one request a minute: a second call is HTTP 429 resource_exhausted,
# and RetryInfo's retryDelay ("59.989s") says when to try again.
for _ in 1 2; do
  body=$(curl -sS "${auth[@]}" -H 'content-type: application/json' "$connect/Complete" \
    -d "$(request limited 'Hello from curl')")
  if [ "$(printf '%s' "$body" | code_of)" = RESOURCE_EXHAUSTED ]; then
    delay=$(printf '%s' "$body" | field_of retryDelay) # "59.989s": round up to whole seconds
    seconds=${delay%s} whole=${delay%%[.s]*}
    [ "$seconds" != "$whole" ] && whole=$((whole + 1))
    printf 'rate limited: RESOURCE_EXHAUSTED %s, retry in %d s\n' "$(printf '%s' "$body" | field_of reason)" "$whole"
    break
  fi
done

# A deadline (connect-timeout-ms) shorter than the stream takes, over the Connect streaming
# protocol: the request is one enveloped message (flag byte 0, 4-byte big-endian length,
# JSON), and the stream ends with an end-of-stream message carrying the error.
body=$(request demo 'Hello from curl')
n=${#body}
envelope=$(printf '\\000\\%03o\\%03o\\%03o\\%03o' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))
stream=$(printf "$envelope%s" "$body" | curl -sSN "${auth[@]}" -H 'content-type: application/connect+json' \
  -H 'connect-timeout-ms: 200' "$connect/StreamComplete" --data-binary @- | tr -d '\000-\010')
printf 'deadline: %s after 200 ms\n' "$(printf '%s' "$stream" | grep -ao '"error":{"code":"[a-z_]*"' | sed 's/.*:"//; s/"//' | tr a-z A-Z)"

# Cancel: stop reading after the first delta. Closing the connection cancels the call.
curl -sSN "${auth[@]}" -H 'content-type: application/json' "$url/v1/chat/completions" \
  -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"Hello from curl"}]}' 2>/dev/null |
  while IFS= read -r line; do
    case "$line" in data:*'"content":"'[!\"]*) break ;; esac
  done || true
echo 'cancel: closed the connection after the first delta'
