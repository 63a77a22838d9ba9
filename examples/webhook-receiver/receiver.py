"""A receiver for the gateway's webhooks (contract 10.3), Python standard library only.

It checks each call's signature, answers a repeated event id 200 without handling it again,
and records each new event as one JSON line on stdout.

    WEBHOOK_SECRET=... PORT=8090 python3 receiver.py

The gateway then runs with WEBHOOK_URL=http://127.0.0.1:8090/webhooks and the same
WEBHOOK_SECRET.
"""
import collections
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()
PORT = int(os.environ.get("PORT", "8090"))
MAX_SKEW_SECS = 300
MAX_BODY_BYTES = 1 << 20
# The gateway stops trying an event 24 h after it happened (plus at most one 5-minute pause):
# an id remembered for 25 h covers every retry.
KEEP_IDS_SECS = 25 * 3600
if len(SECRET) < 32:
    sys.exit("WEBHOOK_SECRET: at least 32 bytes, the gateway's own")


def verified(headers, raw_body: bytes) -> bool:
    """X-Sio-Signature is sha256=HMAC-SHA256(secret, "<X-Sio-Timestamp>.<raw body>") and the
    timestamp is at most 5 minutes away from now."""
    ts = headers.get("X-Sio-Timestamp", "")
    given = headers.get("X-Sio-Signature", "")
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12) or abs(time.time() - int(ts)) > MAX_SKEW_SECS:
        return False
    expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode(), expected.encode())


# The ids already handled, oldest first, each with when it came. In memory, so a restart
# forgets them: a real receiver keeps them where it keeps the effects (a unique key on the
# event id, written in the same transaction).
seen: "collections.OrderedDict[str, float]" = collections.OrderedDict()
seen_lock = threading.Lock()  # ThreadingHTTPServer: one thread per connection


def record(event: dict) -> None:
    """Handles a new event: here, one JSON line on stdout. Keep this quick (store, enqueue);
    the gateway waits at most 10 s for the answer and tries again when it gets none."""
    print(json.dumps(event), flush=True)


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
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read
            return self.send(413, {"error": {"code": "payload_too_large", "message": "1 MiB at most"}})
        raw_body = self.rfile.read(length)  # verify these bytes, before parsing
        if not verified(self.headers, raw_body):
            return self.send(401, {"error": {"code": "bad_signature", "message": "signature or timestamp refused"}})
        try:
            event = json.loads(raw_body)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
            return self.send(400, {"error": {"code": "bad_request", "message": "expected { id, type, createdAt, data }"}})
        now = time.time()
        with seen_lock:
            while seen and now - next(iter(seen.values())) >= KEEP_IDS_SECS:
                seen.popitem(last=False)
            if event["id"] in seen:
                # A retry of an event already handled (its answer was lost, or came too late).
                print(f"duplicate {event['type']} {event['id']}: already handled", file=sys.stderr, flush=True)
                return self.send(200, {"duplicate": True})
            record(event)
            seen[event["id"]] = now
        self.send(200, {"ok": True})

    def do_GET(self):
        self.send(405, {"error": {"code": "method_not_allowed", "message": "POST only"}})

    def log_message(self, *args):  # quiet
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(json.dumps({"listening": server.server_address[1]}), flush=True)
server.serve_forever()
