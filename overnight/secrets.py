"""Secrets never reach MLflow: text from trials (logs, reasons) is scrubbed before it is stored.

Two nets: the values of the orchestrator's own secret-looking environment variables (API keys, tokens, passwords),
and the shapes of common credentials (Anthropic and OpenAI keys, AWS access keys, GitHub and Hugging Face tokens,
bearer tokens), in case a trial got one some other way.
"""

from __future__ import annotations

import os
import re

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_-]{8,}"
    r"|sk-[A-Za-z0-9_-]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*"
)
MIN_VALUE_LENGTH = 8  # shorter values ("1", "true") would redact half a log


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the environment variables whose names say they hold a secret, longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_VALUE_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub(text: str, environ: dict[str, str] | None = None) -> str:
    """The text with every secret value and credential-shaped string replaced by [redacted]."""
    for value in secret_values(environ):
        text = text.replace(value, REDACTED)
    return _SHAPES.sub(REDACTED, text)
