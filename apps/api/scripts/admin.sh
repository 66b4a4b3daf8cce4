#!/usr/bin/env bash
# Sends a signed admin request: admin.sh METHOD PATH [JSON_BODY | @FILE]
# @FILE uploads the file as multipart/form-data field `file` (the signature covers an empty
# body then: POST /admin/apps binds the file by the sha256 in PATH's query).
# Uses ADMIN_KEY, HMAC_SECRET and MDM_URL (http://127.0.0.1:$PORT, PORT 8000 unless set, as
# `npm start` uses it). Without the first two,
# the secrets a local `npm start` generated (apps/api/.data/dev-secrets.json).
set -euo pipefail
method=${1:?METHOD}; path=${2:?PATH}; body=${3:-}
upload=
if [ "${body:0:1}" = "@" ]; then upload=${body:1}; body=; fi
url=${MDM_URL:-http://127.0.0.1:${PORT:-8000}}
secrets_file="$(cd "$(dirname "$0")/.." && pwd)/.data/dev-secrets.json"
dev_secret() { if [ -f "$secrets_file" ]; then sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$secrets_file"; fi; }
admin_key=${ADMIN_KEY:-$(dev_secret ADMIN_KEY)}
hmac_secret=${HMAC_SECRET:-$(dev_secret HMAC_SECRET)}
if [ -z "$admin_key" ] || [ -z "$hmac_secret" ]; then
  echo "admin.sh: set ADMIN_KEY and HMAC_SECRET (no $secrets_file either)" >&2
  exit 2
fi

ts=$(date +%s)
nonce=$(openssl rand -hex 16)
body_hash=$(printf '%s' "$body" | openssl dgst -sha256 -hex | sed 's/.*= //')
# The Host header curl sends for $url: its authority, lower-cased.
host=$(printf '%s' "$url" | sed -E 's#^[a-zA-Z]+://([^/]*).*#\1#' | tr 'A-Z' 'a-z')
signature=$(printf '%s\n%s\n%s\n%s\n%s\n%s' "$ts" "$nonce" "$method" "$host" "$path" "$body_hash" \
  | openssl dgst -sha256 -hmac "$hmac_secret" -hex | sed 's/.*= //')

args=(-s -X "$method" "$url$path" -H "X-Admin: $admin_key" -H "X-Timestamp: $ts" -H "X-Nonce: $nonce" -H "X-Signature: $signature")
[ -n "$body" ] && args+=(-H "Content-Type: application/json" --data-binary "$body")
[ -n "$upload" ] && args+=(-F "file=@$upload")
curl "${args[@]}"
echo
