#!/usr/bin/env bash
# Sends a signed admin request: admin.sh METHOD PATH [JSON_BODY]
# Uses ADMIN_KEY, HMAC_SECRET (development defaults if unset) and MDM_URL (http://127.0.0.1:8000).
set -euo pipefail
method=${1:?METHOD}; path=${2:?PATH}; body=${3:-}
url=${MDM_URL:-http://127.0.0.1:8000}
admin_key=${ADMIN_KEY:-dev-admin-key-change-me}
hmac_secret=${HMAC_SECRET:-dev-hmac-secret-change-me}

ts=$(date +%s)
nonce=$(openssl rand -hex 16)
body_hash=$(printf '%s' "$body" | openssl dgst -sha256 -hex | sed 's/.*= //')
signature=$(printf '%s\n%s\n%s\n%s\n%s' "$ts" "$nonce" "$method" "$path" "$body_hash" \
  | openssl dgst -sha256 -hmac "$hmac_secret" -hex | sed 's/.*= //')

args=(-s -X "$method" "$url$path" -H "X-Admin: $admin_key" -H "X-Timestamp: $ts" -H "X-Nonce: $nonce" -H "X-Signature: $signature")
[ -n "$body" ] && args+=(-H "Content-Type: application/json" --data-binary "$body")
curl "${args[@]}"
echo
