"""A Python client of sio-gateway with python-socketio: connects with a token, waits for
`registered`, joins a room, sends a message, and prints what arrives (one JSON line per
event). With --wait-notification it also waits for one notification.

Usage: python client.py <gateway-url> <token> <room> <text>
           [--wait-notification] [--websocket] [--expect-from=<userId>]
"""

import json
import queue
import sys

import socketio


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    expect_from = next((f.split("=", 1)[1] for f in flags if f.startswith("--expect-from=")), None)
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, token, room, text = args
    events: "queue.Queue[tuple[str, object]]" = queue.Queue()

    sio = socketio.Client(reconnection=False)
    for name in ("registered", "newMessage", "notification", "error"):
        sio.on(name, lambda data, name=name: events.put((name, data)))

    def wait_for(name: str, timeout: float = 10.0, user_id: "str | None" = None):
        while True:
            got, data = events.get(timeout=timeout)
            if got == name and (user_id is None or data.get("userId") == user_id):
                return data

    def emit(name: str, data: dict):
        return sio.call(name, data, timeout=5)

    transports = ["websocket"] if "--websocket" in flags else ["polling", "websocket"]
    sio.connect(url, auth={"token": token}, transports=transports, wait_timeout=10)
    try:
        print(json.dumps({"event": "registered", "data": wait_for("registered")}), flush=True)
        print(json.dumps({"event": "joinRoom:ack", "data": emit("joinRoom", {"roomId": room})}), flush=True)
        print(json.dumps({"event": "sendMessage:ack", "data": emit("sendMessage", {"roomId": room, "text": text})}), flush=True)
        print(json.dumps({"event": "newMessage", "data": wait_for("newMessage")}), flush=True)
        if expect_from:
            reply = wait_for("newMessage", user_id=expect_from)
            print(json.dumps({"event": "newMessage", "data": reply}), flush=True)
        if "--wait-notification" in flags:
            print(json.dumps({"event": "notification", "data": wait_for("notification")}), flush=True)
    finally:
        sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
