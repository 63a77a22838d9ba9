#!/usr/bin/env bash
# Two gateway nodes on one machine sharing PostgreSQL and Redis, then a notification posted
# to node A and read by a client of node B. Needs the local PostgreSQL (trust auth) and Redis.
# Usage: bash examples/two-nodes.sh   (Ctrl-C stops both nodes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=target/release/sio-gateway
DB=sio_gateway_demo
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} REDIS_PREFIX=sio-gateway-demo
export JWT_SECRET=$(openssl rand -hex 32) API_KEYS=$(openssl rand -hex 24) HOST=127.0.0.1
$BIN migrate
PORT=3001 $BIN & A=$!
PORT=3002 $BIN & B=$!
trap 'kill $A $B 2>/dev/null; wait' EXIT
for port in 3001 3002; do
  for _ in $(seq 50); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.1; done
done
echo "node A: http://127.0.0.1:3001   node B: http://127.0.0.1:3002"
echo "token for alice: $($BIN token --sub alice)"
curl -s -X POST localhost:3001/api/notifications -H "Authorization: Bearer $API_KEYS" \
  -H 'Content-Type: application/json' -d '{"userId":"alice","type":"demo","title":"hello","message":"posted to node A"}'
echo
echo "connect a client of alice to node B to see it (after npm ci in examples/node):"
echo "  node examples/node/listener.mjs http://127.0.0.1:3002 <token>"
wait
