#!/usr/bin/env bash
# Two gateway nodes on one machine sharing PostgreSQL and Redis, then a notification posted
# to node A and read by a client of node B. Needs the local PostgreSQL (trust auth) and Redis.
# Usage: bash examples/two-nodes.sh   (Ctrl-C stops both nodes)
# Optional: DEMO_DB (database, recreated), REDIS_PREFIX, PORT_A, PORT_B.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=target/release/sio-gateway
DB=${DEMO_DB:-sio_gateway_demo}
A_PORT=${PORT_A:-3001} B_PORT=${PORT_B:-3002}
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} REDIS_PREFIX=${REDIS_PREFIX:-sio-gateway-demo}
export JWT_SECRET=$(openssl rand -hex 32) API_KEYS=$(openssl rand -hex 24) HOST=127.0.0.1
$BIN migrate
PORT=$A_PORT $BIN & A=$!
PORT=$B_PORT $BIN & B=$!
trap 'kill $A $B 2>/dev/null; wait' EXIT
trap 'exit 130' INT TERM
for port in $A_PORT $B_PORT; do
  for _ in $(seq 50); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.1; done
done
echo "node A: http://127.0.0.1:$A_PORT   node B: http://127.0.0.1:$B_PORT"
echo "token for alice: $($BIN token --sub alice)"
curl -s -X POST localhost:$A_PORT/api/notifications -H "Authorization: Bearer $API_KEYS" \
  -H 'Content-Type: application/json' -d '{"userId":"alice","type":"demo","title":"hello","message":"posted to node A"}'
echo
echo "connect a client of alice to node B to see it (after npm ci in examples/node):"
echo "  node examples/node/listener.mjs http://127.0.0.1:$B_PORT <token>"
wait
