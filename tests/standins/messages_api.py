"""A local stand-in for Anthropic's Messages API: real HTTP, scripted answers, every request kept for inspection.

Point the real `anthropic` client at it with ANTHROPIC_BASE_URL (or base_url=). Replies are scripted per tool: each
POST /v1/messages takes the next reply of its tool's queue, and the last one repeats once the queue is used up. A
request's tool is the one it forces (`tool_choice: {"type": "tool", "name": ...}`, as instructor asks for its response
model, e.g. "WaveAnswer" or "Insights"); a request that forces none (tool_choice absent, "auto" or "any") goes to the
queue of the first tool it offers. A tool without a queue gets the default replies (`script_default`), if any, else an
HTTP 500. A reply is a function of the request body returning (status, headers, json body).

Usage is reported the way the real API reports it, prompt caching included, unless a reply was built with an
explicit `usage=` (then it is reported as given):

- The cacheable prefix is, in order, the `tools`, the `system` blocks and the content blocks of the `messages`; a
  block carrying `cache_control` is a breakpoint (4 at most, as the API allows; 1-hour ones before 5-minute ones).
- The longest prefix that matches a live cache entry (the same model and the same bytes up to a block: the sha256
  of the canonical JSON of every block before it, cache_control left out) at or up to 20 blocks before a breakpoint
  is read (`cache_read_input_tokens`). From there to the last breakpoint is written (`cache_creation_input_tokens`,
  split in `cache_creation` by the lifetime of the breakpoint that ends each part), one entry per breakpoint.
  `input_tokens` is the rest: what follows the last breakpoint, and everything when nothing is cached.
- A breakpoint whose prefix is shorter than the model's minimum cacheable length (`min_cacheable_tokens`) caches
  nothing. An entry lives for its lifetime (5 minutes, or 1 hour) from its last use: a read refreshes it.
- Tokens are an estimate, not a tokenizer's count: 4 characters per token of each block's canonical JSON (rounded
  up), for the prompt and for the reply's content alike. Deterministic, so tests can assert on them.

The cache's clock is `MessagesAPI(clock=...)` (seconds; time.monotonic by default) and may be replaced later
(`api.clock = ...`), so a test or benchmark can move time on without waiting.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict], tuple[int, dict, dict]]
TEST_KEY = "fake-anthropic-key-for-tests-0123456789"  # what tests export as ANTHROPIC_API_KEY
USAGE = {  # a fixed usage, for replies that pass it as usage= (the default is the computed one)
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 50,
}
CHARS_PER_TOKEN = 4
MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20  # how far before a breakpoint the API looks for an earlier entry
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# The minimum cacheable prompt length, tokens, per model prefix (Anthropic's prompt-caching docs; first match wins).
MIN_CACHEABLE = (
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
)
_ids = itertools.count()


def as_usage(reported: dict):
    """The usage one reply reported, as overnight.pricing counts it (one call)."""
    from overnight.pricing import Usage

    return Usage(
        reported["input_tokens"],
        reported["output_tokens"],
        reported["cache_creation_input_tokens"],
        reported["cache_read_input_tokens"],
        1,
        reported["cache_creation"]["ephemeral_1h_input_tokens"],
    )


def min_cacheable_tokens(model: str) -> int:
    for prefix, tokens in MIN_CACHEABLE:
        if model.startswith(prefix):
            return tokens
    return 2048 if "haiku" in model else 1024  # Sonnet 4.5, Sonnet 4, Opus 4.1, Opus 4, Sonnet 3.7: 1024


def estimate_tokens(value: Any) -> int:
    """The stand-in's token count: 4 characters per token of the canonical JSON, rounded up."""
    return math.ceil(len(_canonical(value)) / CHARS_PER_TOKEN)


def route(body: dict) -> str:
    """The tool whose queue answers a request: the one it forces, else the first it offers ("" for none)."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return choice.get("name", "")
    tools = body.get("tools") or [{}]
    return tools[0].get("name", "")


def _message(body: dict, content: list[dict], stop_reason: str, usage: dict | None) -> dict:
    message = {
        "id": f"msg_standin_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    if usage is not None:  # else the server reports what it computed
        message["usage"] = usage
    return message


def tool_answer(answer: dict | Callable[[dict], dict], usage: dict | None = None) -> Reply:
    """A tool_use reply naming the request's tool (see `route`), with `answer` (or answer(request)) as its input."""

    def reply(body: dict) -> tuple[int, dict, dict]:
        data = answer(body) if callable(answer) else answer
        call = {"type": "tool_use", "id": f"toolu_standin_{next(_ids)}", "name": route(body), "input": data}
        return 200, {}, _message(body, [call], "tool_use", usage)

    return reply


Call = tuple[str, dict]


def tool_calls(*calls: Call | Callable[[dict], list[Call]], usage: dict | None = None) -> Reply:
    """A reply calling several tools at once, in order: each call is (tool name, input), or a function of the
    request returning a list of those (e.g. memory lookups chosen from what the prompt says)."""

    def reply(body: dict) -> tuple[int, dict, dict]:
        found: list[Call] = []
        for call in calls:
            found += call(body) if callable(call) else [call]
        content = [
            {"type": "tool_use", "id": f"toolu_standin_{next(_ids)}", "name": name, "input": data}
            for name, data in found
        ]
        return 200, {}, _message(body, content, "tool_use", usage)

    return reply


def text_answer(text: str, usage: dict | None = None) -> Reply:
    """A reply with no tool call at all (garbage for a structured request)."""

    def reply(body: dict) -> tuple[int, dict, dict]:
        return 200, {}, _message(body, [{"type": "text", "text": text}], "end_turn", usage)

    return reply


def error(status: int, kind: str, message: str = "scripted error") -> Reply:
    def reply(body: dict) -> tuple[int, dict, dict]:
        headers = {"retry-after-ms": "20"} if status in (429, 529) or status >= 500 else {}
        return status, headers, {"type": "error", "error": {"type": kind, "message": message}}

    return reply


class Clock:
    """A clock that moves only when told: `MessagesAPI(clock=Clock())`, then `clock.advance(seconds)`."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _blocks(body: dict) -> list[tuple[str, dict]]:
    """The request's prompt as (where, block) in the cache's order: the tools, the system blocks, then each
    message's content blocks (where: "tools", "system", or the message's role). Blocks are copies."""
    blocks = [("tools", dict(tool)) for tool in body.get("tools") or []]
    system = body.get("system") or []
    system = [{"type": "text", "text": system}] if isinstance(system, str) else system
    blocks += [("system", dict(block)) for block in system]
    for message in body.get("messages") or []:
        content = message.get("content") or []
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks += [(message.get("role", ""), dict(block)) for block in content]
    return blocks


class PromptCache:
    """The API's prompt cache: entries keyed by a prefix's hash, each alive until its lifetime after its last use."""

    def __init__(self):
        self.entries: dict[str, tuple[float, float]] = {}  # prefix hash -> (expires at, lifetime s)

    def account(self, body: dict, content: list[dict], now: float) -> dict:
        """The usage of one answered request, writing and refreshing entries as the API would."""
        blocks = _blocks(body)
        marks = [block.pop("cache_control", None) for _, block in blocks]
        breakpoints = [i for i, mark in enumerate(marks) if mark]
        keys, ends, running, total = [], [], hashlib.sha256(_canonical(body["model"]).encode()), 0
        in_messages = False
        for where, block in blocks:
            if where not in ("tools", "system") and not in_messages:
                # a different tool_choice invalidates the messages' part of the cache, not the tools' or system's
                running.update(_canonical(body.get("tool_choice")).encode())
                in_messages = True
            running.update(_canonical([where, block]).encode())
            keys.append(running.hexdigest())
            total += estimate_tokens(block)
            ends.append(total)  # tokens up to and including this block
        self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
        minimum = min_cacheable_tokens(body["model"])
        hit = -1
        for index in range(len(blocks)):
            near = any(index <= b < index + LOOKBACK_BLOCKS for b in breakpoints)
            if near and keys[index] in self.entries:
                hit = index
        read = ends[hit] if hit >= 0 else 0
        if hit >= 0:
            expires, lifetime = self.entries[keys[hit]]
            if marks[hit]:
                lifetime = max(lifetime, TTL_SECONDS[marks[hit].get("ttl", "5m")])
            self.entries[keys[hit]] = (now + lifetime, lifetime)
        written = {"5m": 0, "1h": 0}
        start = read
        for index in breakpoints:
            if index <= hit or ends[index] < minimum:
                continue
            ttl = marks[index].get("ttl", "5m")
            written[ttl] += ends[index] - start
            start = ends[index]
            self.entries[keys[index]] = (now + TTL_SECONDS[ttl], TTL_SECONDS[ttl])
        return {
            "input_tokens": total - start,
            "output_tokens": estimate_tokens(content),
            "cache_creation_input_tokens": written["5m"] + written["1h"],
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
            "service_tier": "standard",
        }


def _invalid_breakpoints(body: dict) -> str:
    """Why the API would refuse the request's cache_control blocks; empty when it would not."""
    ttls = [b["cache_control"].get("ttl", "5m") for _, b in _blocks(body) if b.get("cache_control")]
    if len(ttls) > MAX_BREAKPOINTS:
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(ttls)}."
    if any(TTL_SECONDS.get(t) is None for t in ttls):
        return f"cache_control.ttl must be one of {sorted(TTL_SECONDS)}"
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        return "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"
    return ""


class MessagesAPI:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.cache = PromptCache()
        self.queues: dict[str, list[Reply]] = {}
        self.default: list[Reply] = []  # for a tool with no queue of its own
        # every request: {"path": ..., "headers": {...}, "body": {...}, "usage": what was reported, or None}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "usage": None,
                }
                refused = _invalid_breakpoints(body)
                with api._lock:
                    api.requests.append(record)
                    queue = [] if refused else api.queues.get(route(body), api.default)
                    reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else None)
                if refused:
                    status, headers, payload = (
                        400,
                        {},
                        {"type": "error", "error": {"type": "invalid_request_error", "message": refused}},
                    )
                elif reply is None:
                    status, headers, payload = (
                        500,
                        {},
                        {"type": "error", "error": {"type": "api_error", "message": "script exhausted"}},
                    )
                else:
                    status, headers, payload = reply(body)
                if status == 200 and payload.get("type") == "message":
                    with api._lock:
                        usage = api.cache.account(body, payload.get("content", []), api.clock())
                    payload.setdefault("usage", usage)
                    record["usage"] = payload["usage"]
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(  # a short poll, so that closing it takes milliseconds, not 0.5 s
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def script(self, tool: str, *replies: Reply) -> None:
        """The replies to requests for `tool`, in order; the last repeats."""
        self.queues[tool] = list(replies)

    def script_default(self, *replies: Reply) -> None:
        """The replies to requests for any tool that has no script of its own, in order; the last repeats."""
        self.default = list(replies)

    def for_tool(self, tool: str) -> list[dict]:
        return [r["body"] for r in self.requests if route(r["body"]) == tool]

    def usages(self, tool: str | None = None) -> list[dict]:
        """The usage reported for each answered request (for `tool`'s requests only, when given), in order."""
        return [
            r["usage"] for r in self.requests if r["usage"] is not None and tool in (None, route(r["body"]))
        ]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MessagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[str]:
        """Every request body as text, for assertions on what was sent."""
        return [json.dumps(r["body"]) for r in self.requests]
