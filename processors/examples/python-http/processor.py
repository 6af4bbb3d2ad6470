#!/usr/bin/env python3
"""An agentmesh processor in Python that uses nothing but the gateway's HTTP API
and the standard library: it tails agent streams over SSE and owns one tool,
`lookup_word`, answering `agent/tool-call-requested` with `agent/tool-call-settled`.

It keeps the processor contract over HTTP (docs/EVENTS.md, "A processor over
HTTP"): one reaction per event through crashes and redeliveries, none while the
stream is paused, and a decision made again when the stream moved under it.

Environment:
  AGENTMESH_URL   the gateway (default http://127.0.0.1:8080)
  AGENTMESH_TOKEN a bearer token with read and admin on WATCH (admin: its answers name it
                  as their `source`, which only a processor may; optional with AUTH=off)
  WATCH           stream or subtree to follow (default /agents/**)
  PROCESSOR_NAME  the `source.processor` of its reactions (default python-http)
  STATE_DIR       where it keeps its cursor across restarts; without it, a
                  restart starts at the newest event and what was appended
                  while it was down is never answered
  START_AFTER     with no stored cursor, start after this offset (a rewind)
                  instead of at the newest event
"""
import http.client
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

BASE_URL = os.environ.get("AGENTMESH_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ.get("AGENTMESH_TOKEN")
WATCH = os.environ.get("WATCH", "/agents/**")
NAME = os.environ.get("PROCESSOR_NAME", "python-http")
STATE_DIR = os.environ.get("STATE_DIR")
START_AFTER = os.environ.get("START_AFTER")

PAUSES = {"stream/paused", "agent/paused"}
RESUMES = {"stream/resumed"}
# A decision that keeps losing the race for the expected offset is retried for this long (the runtime's 20 s).
CONFLICT_RETRY_S = 20

WORDS = {
    "mesh": "a network of connected parts",
    "agent": "one who acts on behalf of another",
    "event": "something that happens, recorded once and never changed",
}


def log(message):
    print(json.dumps({"level": "info", "service": NAME, "msg": message}), flush=True)


def lookup_word(arguments):
    try:
        word = str(json.loads(arguments or "{}").get("word", "")).lower()
    except (TypeError, ValueError, AttributeError):
        return None, 'arguments must be {"word": "..."}'
    if word not in WORDS:
        return None, f"unknown word: {word!r}"
    return {"word": word, "definition": WORDS[word]}, None


TOOLS = {"lookup_word": lookup_word}


class Gateway:
    """The few HTTP calls a processor needs, with the token and JSON handled once."""

    @staticmethod
    def headers(extra=None):
        headers = {"content-type": "application/json", **(extra or {})}
        if TOKEN:
            headers["authorization"] = f"Bearer {TOKEN}"
        return headers

    @staticmethod
    def request(method, path, body=None, headers=None):
        """(status, JSON body); HTTP errors are answers here, not exceptions. Network errors raise OSError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{BASE_URL}{path}", data=data, headers=Gateway.headers(headers), method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.load(error)
            except ValueError:
                return error.code, {}

    @staticmethod
    def events_after(stream_path, offset):
        """Every event of the stream after `offset`, in order (the log is the truth)."""
        events, after = [], offset
        while True:
            status, page = Gateway.request("GET", f"/streams{quote(stream_path)}?after={after}&limit=1000")
            if status == 404:
                return events
            if status != 200:
                raise OSError(f"reading {stream_path} answered {status}")
            events.extend(page["events"])
            after = page["nextOffset"]
            if page["upToDate"]:
                return events

    @staticmethod
    def index_says_paused(stream_path):
        """The gateway's pause index: a cache that may lag the log, never lead it."""
        status, body = Gateway.request("GET", f"/streams?prefix={quote(stream_path)}&limit=1")
        if status != 200:
            raise OSError(f"listing {stream_path} answered {status}")
        return any(s["path"] == stream_path and s["paused"] for s in body["streams"])

    @staticmethod
    def newest_offset():
        prefix = WATCH[:-3] if WATCH.endswith("/**") else WATCH
        newest, cursor = 0, None
        while True:
            query = f"prefix={quote(prefix)}&limit=1000" + (f"&cursor={quote(cursor)}" if cursor else "")
            status, body = Gateway.request("GET", f"/streams?{query}")
            if status != 200:
                raise OSError(f"listing {prefix} answered {status}")
            newest = max([newest] + [s["lastOffset"] for s in body["streams"]])
            cursor = body.get("nextCursor")
            if not cursor:
                return newest


class Cursor:
    """The offset of the last event handled. Saved after each event, so a crash repeats at most the one in hand,
    which the `source` check recognises."""

    def __init__(self):
        self.path = os.path.join(STATE_DIR, f"{NAME}.cursor.json") if STATE_DIR else None
        self.after = None

    def load(self):
        if self.path is None or not os.path.exists(self.path):
            return None
        with open(self.path, encoding="utf-8") as stored:
            return int(json.load(stored)["after"])

    def save(self, offset):
        self.after = offset
        if self.path is None:
            return
        os.makedirs(STATE_DIR, exist_ok=True)
        # Written aside and renamed: a crash leaves the old cursor or the new one, never half of one.
        partial = f"{self.path}.partial"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump({"after": offset}, out)
        os.replace(partial, self.path)


def decide(event):
    """The reaction to a tool call this processor owns, or None. A payload it cannot read is not its tool call."""
    call = event.get("payload")
    if not isinstance(call, dict) or not isinstance(call.get("callId"), str) or not isinstance(call.get("name"), str) or call["name"] not in TOOLS:
        return None
    result, error = TOOLS[call["name"]](call.get("arguments"))
    payload = {"callId": call["callId"], **({"result": result} if error is None else {"error": error})}
    return {"type": "agent/tool-call-settled", "payload": payload}


def react(event):
    """The decide-and-append loop of docs/EVENTS.md, over HTTP. Returns when the event needs nothing more."""
    offset, stream_path = event["offset"], event["streamPath"]
    reaction = decide(event)
    if reaction is None:
        return
    reaction["source"] = {"processor": NAME, "causationOffset": offset}
    reaction["idempotencyKey"] = f"{NAME}:{offset}:0"
    deadline, attempt = time.monotonic() + CONFLICT_RETRY_S, 0
    while True:
        attempt += 1
        later = Gateway.events_after(stream_path, offset)
        if any((e.get("source") or {}) == {"processor": NAME, "causationOffset": offset} for e in later):
            log(f"already answered {stream_path} at offset {offset} (a redelivery)")
            return
        pauses = [e["type"] for e in later if e["type"] in PAUSES | RESUMES]
        if (pauses[-1] in PAUSES) if pauses else Gateway.index_says_paused(stream_path):
            log(f"{stream_path} is paused; not reacting to offset {offset}")
            return
        expected = later[-1]["offset"] if later else offset
        status, body = Gateway.request("POST", f"/streams{quote(stream_path)}", reaction, {"if-match": str(expected)})
        if status in (200, 201):
            log(f"settled {reaction['payload']['callId']} for {stream_path} at offset {offset}")
            return
        if status == 423:
            log(f"{stream_path} was paused before the answer was stored; not reacting to offset {offset}")
            return
        if status in (401, 403, 429):
            # Rate limited, or the token expired or lost its grant: nothing is wrong with the event; wait and retry.
            time.sleep(1 if status == 429 else 5)
            continue
        if status == 409 and time.monotonic() < deadline:
            # The stream moved between the read and the append: read it again and decide again.
            time.sleep(min(0.01 * attempt, 0.5))
            continue
        if status >= 500 or status == 409:
            raise OSError(f"appending to {stream_path} answered {status}: {body}")
        give_up(event, f"the answer was refused: {status} {body.get('error', {}).get('message', '')}")
        return


def give_up(event, message):
    """An error retrying cannot fix: say so in the stream, once (docs/EVENTS.md, "Giving up")."""
    offset = event["offset"]
    status, _ = Gateway.request("POST", f"/streams{quote(event['streamPath'])}", {
        "type": "stream/error-occurred",
        "payload": {"processor": NAME, "message": message, "offset": offset},
        "source": {"processor": NAME, "causationOffset": offset},
        "idempotencyKey": f"{NAME}:{offset}:error",
    })
    log(f"gave up on {event['streamPath']} at offset {offset}: {message} (error event {status})")


def tail(cursor, after):
    """Follow the SSE tail from `after`, handling events one at a time in log order; returns when it ends."""
    url = urlsplit(f"{BASE_URL}/streams{WATCH}?live=sse")
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    connection.request("GET", f"{url.path}?{url.query}", headers=Gateway.headers({"accept": "text/event-stream", "last-event-id": str(after)}))
    response = connection.getresponse()
    if response.status != 200:
        raise OSError(f"tail answered {response.status}")
    log(f"tailing {WATCH} after offset {after}")
    event_id, data = None, []
    # SSE framing (WHATWG): fields until a blank line; comments start with ':'. The standard library has no SSE
    # client and this example installs nothing, so the few lines of framing are here.
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data and event_id is not None:
                event = json.loads("\n".join(data))
                # An event a fork inherited is history: its call was answered in the source, or is left open.
                if event.get("type") == "agent/tool-call-requested" and "forkedFrom" not in event:
                    try:
                        react(event)
                    except (TypeError, ValueError, KeyError, AttributeError) as error:
                        # A body no retry can fix: say so in the stream and go on with the others.
                        give_up(event, f"cannot handle this event: {error!r}")
                after = int(event_id)
                cursor.save(after)
            event_id, data = None, []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "data":
                data.append(value)


def starting_offset(cursor):
    newest = Gateway.newest_offset()
    stored = cursor.load()
    if stored is not None and stored <= newest:
        return stored
    if stored is not None:
        # Offsets only grow: a cursor past the newest event was written against another store.
        log(f"stored cursor {stored} is past the newest offset {newest} (another store?); starting at {newest}")
        return newest
    return int(START_AFTER) if START_AFTER else newest


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cursor = Cursor()
    log(f"{NAME} starting against {BASE_URL}")
    while True:
        try:
            if cursor.after is None:
                cursor.after = starting_offset(cursor)
            tail(cursor, cursor.after)
            time.sleep(0.5)  # the gateway ended the tail (a restart): resume shortly
        except (OSError, http.client.HTTPException, ValueError) as error:
            # Resumed after the last event handled: the one in hand, if any, comes again.
            log(f"interrupted ({error}); resuming after offset {cursor.after}")
            time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
