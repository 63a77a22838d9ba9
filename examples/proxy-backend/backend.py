"""A backend for the gateway's event proxy (contract 10.2), Python standard library only.

It checks each call's signature, answers the event `order.place`, and calls the gateway's
server API (10.1) to put the user in the order's room.

    PROXY_SECRET=... PORT=8080 GATEWAY_URL=http://127.0.0.1:3000 API_KEY=... python3 backend.py

The gateway then runs with PROXY_URL=http://127.0.0.1:8080/ and the same PROXY_SECRET.
"""
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("PROXY_SECRET", "").encode()
PORT = int(os.environ.get("PORT", "8080"))
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:3000")
API_KEY = os.environ.get("API_KEY", "")
MAX_SKEW_SECS = 300
if len(SECRET) < 32:
    sys.exit("PROXY_SECRET: at least 32 bytes, the gateway's own")


def verified(headers, raw_body: bytes) -> bool:
    """X-Sio-Signature is sha256=HMAC-SHA256(secret, "<X-Sio-Timestamp>.<raw body>") and the
    timestamp is at most 5 minutes away from now."""
    ts = headers.get("X-Sio-Timestamp", "")
    given = headers.get("X-Sio-Signature", "")
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12) or abs(time.time() - int(ts)) > MAX_SKEW_SECS:
        return False
    expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode(), expected.encode())


def join_room(room_id: str, user_id: str) -> dict:
    """The server API: every socket of user_id, on every node, joins room_id. Returns {sockets}."""
    req = urllib.request.Request(
        f"{GATEWAY_URL}/api/rooms/{urllib.parse.quote(room_id, safe='')}/join",
        data=json.dumps({"userId": user_id}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=2) as res:
        return json.load(res)


def handle(call: dict):
    """One proxied event -> (status, answer). 2xx {data} is the client's {ok: true, data};
    4xx {error: {code, message, details?}} its {ok: false, error}."""
    event, user_id, data = call["event"], call["userId"], call["data"]
    if event != "order.place":
        return 404, {"error": {"code": "unknown_event", "message": f"no handler for {event}"}}
    item, qty = data.get("item"), data.get("qty")
    if not isinstance(item, str) or type(qty) is not int or qty < 1:
        return 422, {"error": {"code": "validation_failed", "message": "bad order", "details": {"qty": ["a positive integer"]}}}
    if qty > 10:
        return 409, {"error": {"code": "out_of_stock", "message": f"only 10 {item} left"}}
    order_id = "o-" + secrets.token_hex(6)
    room_id = f"order.{order_id}"  # the user's sockets get `joinedRoom` before this ack
    sockets = join_room(room_id, user_id)["sockets"]
    return 200, {"data": {"orderId": order_id, "item": item, "qty": qty, "userId": user_id, "roomId": room_id, "sockets": sockets}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the gateway reuses its connections

    def send(self, status: int, body: dict):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):
        raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # verify these bytes
        if not verified(self.headers, raw_body):
            return self.send(401, {"error": {"code": "bad_signature", "message": "signature or timestamp refused"}})
        try:
            self.send(*handle(json.loads(raw_body)))
        except Exception as e:  # the client sees `unavailable`
            print(f"backend failure: {e!r}", file=sys.stderr)
            self.send(500, {"error": {"code": "internal", "message": "backend failure"}})

    def log_message(self, *args):  # quiet
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(json.dumps({"listening": server.server_address[1]}), flush=True)
server.serve_forever()
