"""A local stand-in for Anthropic's Messages API: real HTTP, scripted answers, every request kept for inspection.

Point the real `anthropic` client at it with ANTHROPIC_BASE_URL (or base_url=). Replies are scripted per tool (the
response model instructor asks for, e.g. "WaveAnswer" or "Insights"): each POST /v1/messages takes the next reply of
its tool's queue, and the last one repeats once the queue is used up. A reply is a function of the request body
returning (status, headers, json body).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[dict], tuple[int, dict, dict]]
TEST_KEY = "fake-anthropic-key-for-tests-0123456789"  # what tests export as ANTHROPIC_API_KEY
USAGE = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 50,
}


def tool_answer(answer: dict | Callable[[dict], dict], usage: dict | None = None) -> Reply:
    """A tool_use reply naming the tool the request offered, with `answer` (or answer(request)) as its input."""

    def reply(body: dict) -> tuple[int, dict, dict]:
        tool = body["tools"][0]["name"]
        data = answer(body) if callable(answer) else answer
        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "tool_use", "id": "toolu_standin", "name": tool, "input": data}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": usage or USAGE,
        }
        return 200, {}, message

    return reply


def text_answer(text: str, usage: dict | None = None) -> Reply:
    """A reply with no tool call at all (garbage for a structured request)."""

    def reply(body: dict) -> tuple[int, dict, dict]:
        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage or USAGE,
        }
        return 200, {}, message

    return reply


def error(status: int, kind: str, message: str = "scripted error") -> Reply:
    def reply(body: dict) -> tuple[int, dict, dict]:
        headers = {"retry-after-ms": "20"} if status in (429, 529) or status >= 500 else {}
        return status, headers, {"type": "error", "error": {"type": kind, "message": message}}

    return reply


class MessagesAPI:
    def __init__(self):
        self.queues: dict[str, list[Reply]] = {}
        self.requests: list[dict] = []  # {"path": ..., "headers": {...}, "body": {...}}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with api._lock:
                    api.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    tools = body.get("tools") or [{}]
                    queue = api.queues.get(tools[0].get("name", ""), [])
                    reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else None)
                if reply is None:
                    status, headers, payload = (
                        500,
                        {},
                        {"type": "error", "error": {"type": "api_error", "message": "script exhausted"}},
                    )
                else:
                    status, headers, payload = reply(body)
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def script(self, tool: str, *replies: Reply) -> None:
        """The replies to requests for `tool`, in order; the last repeats."""
        self.queues[tool] = list(replies)

    def for_tool(self, tool: str) -> list[dict]:
        return [r["body"] for r in self.requests if (r["body"].get("tools") or [{}])[0].get("name") == tool]

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
