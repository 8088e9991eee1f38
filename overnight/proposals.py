"""Proposals: a hypothesis plus exact search/replace edits to the editable files.

Every planner emits these objects; `apply_proposal` is the one place where edits are checked (each applies exactly once,
only editable files change, Python still parses) and turned into the trial's files.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import io
import re
import tokenize
from collections.abc import Mapping
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field


class ProposalError(ValueError):
    """A proposal that cannot be applied to the champion; the message says which edit and why."""


class Edit(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str = Field(description="file to edit, relative to the program folder")
    search: str = Field(description="exact text that occurs exactly once in the file")
    replace: str = Field(description="text that takes its place")


class Proposal(BaseModel):
    model_config = ConfigDict(frozen=True)

    hypothesis: str = Field(description="one line: what is changed and what it should do")
    rationale: str = Field("", description="why this is worth a trial")
    expected: str = Field("", description="the effect expected on the metric")
    edits: list[Edit] = Field(default_factory=list)
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="knob values the proposal sets (for the record)"
    )
    source: str = Field("", description="which planner proposed it: claude | offline")
    # A cell of a two-level factorial grid: factor -> (level label, 0 for the low level or 1 for the high one).
    factors: dict[str, tuple[str, int]] = Field(default_factory=dict)


Files = Mapping[str, str]


def apply_proposal(files: Files, proposal: Proposal, editable: list[str]) -> dict[str, str]:
    """Return the editable files with the proposal applied, or raise ProposalError naming the bad edit."""
    allowed = {_normalise_path(name) for name in editable}
    result = dict(files)
    for number, edit in enumerate(proposal.edits, start=1):
        path = _normalise_path(edit.path)
        if path not in allowed:
            raise ProposalError(
                f"edit {number} touches {edit.path!r}, which is not editable (editable: {', '.join(sorted(allowed))})"
            )
        text = result[path]
        count = text.count(edit.search) if edit.search else 0
        if count == 0:
            raise ProposalError(
                f"edit {number} to {path}: the search text was not found: {edit.search[:80]!r}"
            )
        if count > 1:
            raise ProposalError(
                f"edit {number} to {path}: the search text occurs {count} times; it must occur exactly once"
            )
        result[path] = text.replace(edit.search, edit.replace, 1)
    for path, text in result.items():
        if path.endswith(".py"):
            try:
                ast.parse(text, filename=path)
            except SyntaxError as error:
                raise ProposalError(
                    f"{path} no longer parses after the edits: line {error.lineno}: {error.msg}"
                ) from None
    return result


def _normalise_path(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ProposalError(f"edit path {name!r} must stay inside the program folder")
    return str(path)


def unified_diff(before: Files, after: Files) -> str:
    """A git-style diff of the editable files, for people and for MLflow."""
    chunks = []
    for path in sorted(after):
        old, new = before.get(path, ""), after[path]
        if old != new:
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
                )
            )
    return "".join(chunks)


def fingerprint(files: Files) -> str:
    """Identity of an experiment: the editable files' content, ignoring trailing spaces and blank lines.

    Two proposals that lead to the same files are the same experiment, however their edits were written.
    """
    digest = hashlib.sha256()
    for path in sorted(files):
        lines = [line.rstrip() for line in files[path].splitlines() if line.strip()]
        digest.update(path.encode() + b"\0" + "\n".join(lines).encode() + b"\0")
    return digest.hexdigest()[:16]


def change_as_edits(before: Files, after: Files) -> list[Edit]:
    """The change from `before` to `after` as search/replace edits, each search the changed lines (with as much
    context as makes it unique in its file): applied to other files (a newer champion), an edit finds its place only
    where those lines are as they were, so a change re-applies cleanly or fails with the reason (`apply_proposal`)."""
    edits = []
    for path in sorted(after):
        old, new = before.get(path, "").splitlines(keepends=True), after[path].splitlines(keepends=True)
        text = "".join(old)
        opcodes = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in opcodes:
            if tag == "equal":
                continue
            context = 0 if i2 > i1 else 1  # an insertion needs a line to hang on
            while True:
                start, end = max(0, i1 - context), min(len(old), i2 + context)
                search = "".join(old[start:end])
                if (search and text.count(search) == 1) or (start == 0 and end == len(old)):
                    break
                context += 1
            replace = "".join(old[start:i1] + new[j1:j2] + old[i2:end])
            edits.append(Edit(path=path, search=search, replace=replace))
    return edits


_CONSTANT = re.compile(r"([A-Z][A-Z0-9_]*)\s*=(?!=)\s*(.+)")  # a module-level `NAME = value` line


def compact_change(before: Files, after: Files, limit: int = 200) -> str:
    """The change from `before` to `after` in one short line, for a prompt's history: each UPPER_CASE constant that
    moved as `NAME old -> new` (its literals as written), other changed lines as `path: -old +new`; cut at `limit`
    characters with a count of the parts left out. Empty when no line changed but comments or spacing."""
    parts = []
    for path in sorted(after):
        old, new = before.get(path, "").splitlines(), after[path].splitlines()
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag != "equal":
                parts += _changed_lines(path, old[i1:i2], new[j1:j2])
    text = ""
    for shown, part in enumerate(parts):
        longer, after_it = f"{text}; {part}" if text else part, len(parts) - shown - 1
        if len(longer) + (len(f"; ... ({after_it} more)") if after_it else 0) > limit:
            return f"{text}; ... ({len(parts) - shown} more)" if text else part[: limit - 3] + "..."
        text = longer
    return text


def _changed_lines(path: str, removed: list[str], added: list[str]) -> list[str]:
    """One changed block of a file: the constants it moves, then its other changed lines."""
    old = dict(found for line in removed if (found := _constant(line)))
    new = dict(found for line in added if (found := _constant(line)))
    moved = [name for name in new if name in old]
    parts = [f"{name} {old[name]} -> {new[name]}" for name in moved if old[name] != new[name]]

    def other(line: str) -> bool:
        found = _constant(line)
        return bool(line.strip()) and not (found and found[0] in moved)

    code = [f"-{line.strip()}" for line in removed if other(line)]
    code += [f"+{line.strip()}" for line in added if other(line)]
    return parts + ([f"{path}: {' '.join(code)}"] if code else [])


def _constant(line: str) -> tuple[str, str] | None:
    """(name, literal as written) of a module-level `NAME = value  # comment` line; None for any other line."""
    match = _CONSTANT.fullmatch(line.rstrip())
    if match is None:
        return None
    value = match[2]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(value).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    comment = next((t.start[1] for t in tokens if t.type == tokenize.COMMENT), None)
    return match[1], (value[:comment] if comment is not None else value).rstrip()
