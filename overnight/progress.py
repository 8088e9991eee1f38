"""Progress events, so a front end (the CLI's progress bar) can follow a campaign without the core knowing it.

The loop calls `emit`; whoever wants to listen calls `subscribe`. With no listener (a deployment), events go nowhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Listener = Callable[..., None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def emit(event: str, **data: object) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event, **data)
        except Exception:  # a broken display must never stop the research
            pass
