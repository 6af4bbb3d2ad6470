#!/usr/bin/env python3
"""An agentmesh processor in Python that uses nothing but the gateway's HTTP API
and the standard library: it tails agent streams over SSE and owns one tool,
`lookup_word`, answering `agent/tool-call-requested` with `agent/tool-call-settled`.

Environment: AGENTMESH_URL (default http://127.0.0.1:8080), WATCH (stream or
subtree, default /agents/**), PROCESSOR_NAME (default python-http).
"""
import http.client
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

BASE_URL = os.environ.get("AGENTMESH_URL", "http://127.0.0.1:8080").rstrip("/")
WATCH = os.environ.get("WATCH", "/agents/**")
NAME = os.environ.get("PROCESSOR_NAME", "python-http")

WORDS = {
    "mesh": "a network of connected parts",
    "agent": "one who acts on behalf of another",
    "event": "something that happens, recorded once and never changed",
}


def log(message):
    print(json.dumps({"level": "info", "service": NAME, "msg": message}), flush=True)


def lookup_word(arguments):
    word = str(json.loads(arguments or "{}").get("word", "")).lower()
    if word not in WORDS:
        return None, f"unknown word: {word!r}"
    return {"word": word, "definition": WORDS[word]}, None


TOOLS = {"lookup_word": lookup_word}


def append(stream_path, event):
    """POST one event; a 423 (paused stream) means: do not react."""
    request = urllib.request.Request(
        f"{BASE_URL}/streams{stream_path}",
        data=json.dumps(event).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        if error.code == 423:
            log(f"{stream_path} is paused; not reacting")
            return error.code
        raise


def react(event):
    if event.get("type") != "agent/tool-call-requested":
        return
    call = event.get("payload", {})
    tool = TOOLS.get(call.get("name"))
    if tool is None:
        return
    result, error = tool(call.get("arguments"))
    payload = {"callId": call["callId"]}
    if error is None:
        payload["result"] = result
    else:
        payload["error"] = error
    offset = event["offset"]
    append(event["streamPath"], {
        "type": "agent/tool-call-settled",
        "payload": payload,
        "source": {"processor": NAME, "causationOffset": offset},
        # Deterministic: a replay after a reconnect stores nothing twice.
        "idempotencyKey": f"{NAME}:{offset}:0",
    })
    log(f"settled {call['callId']} ({call['name']}) for {event['streamPath']} at offset {offset}")


def current_end():
    """The newest offset under WATCH: a fresh processor reacts to new events only."""
    prefix = WATCH[:-3] if WATCH.endswith("/**") else WATCH
    with urllib.request.urlopen(f"{BASE_URL}/streams?prefix={prefix}", timeout=10) as response:
        streams = json.load(response)["streams"]
    return max((s["lastOffset"] for s in streams), default=0)


def tail(last_event_id):
    """Follow the SSE tail; returns the last id seen when the connection ends."""
    url = urlsplit(f"{BASE_URL}/streams{WATCH}?live=sse")
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    connection.request("GET", f"{url.path}?{url.query}", headers={"accept": "text/event-stream", "last-event-id": str(last_event_id)})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"tail answered {response.status}")
    log(f"tailing {WATCH} after offset {last_event_id}")
    event_id, data = None, []
    # SSE framing (WHATWG): fields until a blank line; comments start with ':'.
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data and event_id is not None:
                react(json.loads("\n".join(data)))
                last_event_id = int(event_id)
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
    return last_event_id


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    last = None
    log(f"{NAME} starting against {BASE_URL}")
    while True:
        try:
            if last is None:
                last = current_end()
            last = tail(last)
        except (OSError, RuntimeError, http.client.HTTPException) as error:
            log(f"tail interrupted ({error}); resuming after {last}")
            time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
