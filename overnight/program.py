"""The research program: the folder a trial runs in, and the UPPER_CASE constants that act as its knobs."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import operator
import shutil
from dataclasses import dataclass
from pathlib import Path

from overnight.proposals import Edit

# Never copied into a trial: caches and local state that are not part of the program.
IGNORED_NAMES = ("__pycache__", ".overnight", "mlruns", ".git")
_IGNORED = shutil.ignore_patterns(*IGNORED_NAMES, "*.pyc")


def read_files(program: Path, names: list[str]) -> dict[str, str]:
    """The text of the named files of a program folder."""
    return {name: (program / name).read_text() for name in names}


def copy_program(program: Path, destination: Path, files: dict[str, str]) -> None:
    """Copy the program folder to a fresh trial folder, then write the trial's versions of the editable files."""
    shutil.copytree(program, destination, ignore=_IGNORED)  # symlinks are copied as the files they point to
    root = destination.resolve()
    for name, text in files.items():
        target = (destination / name).resolve()
        if not target.is_relative_to(root):  # `..`, an absolute path or a symlink out of the trial's folder
            raise OSError(f"{name!r} resolves to {target}, outside the trial's folder {root}")
        target.write_text(text)


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below a folder (caches excluded), by relative path."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(
            part in IGNORED_NAMES or part.endswith(".pyc") for part in relative.parts
        ):
            hashes[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def changed_files(expected: dict[str, str], found: dict[str, str], allowed: set[str]) -> list[str]:
    """Files of `expected` (path -> hash), other than the allowed ones, that are modified or missing in `found`."""
    return sorted(p for p, digest in expected.items() if p not in allowed and found.get(p) != digest)


@dataclass(frozen=True)
class Constant:
    """A module-level `NAME = value` line in a script: a literal, or plain arithmetic of numbers."""

    name: str
    value: object  # bool, int, float or str
    line: str  # the source line, exactly as in the file (the search text of an edit)
    literal: str  # the value as written, e.g. "1e-3" or "2**19"


_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
MAX_EXPONENT = 1024  # `2**19` is a constant; `10**10**10` is not evaluated


def _number(node: ast.expr) -> int | float:
    """The value of a number or of plain arithmetic of numbers (+ - * / // ** and unary minus); ValueError for
    anything else (a name, a call, a string, a result that is not a finite real number)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float) and math.isfinite(node.value):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _number(node.left), _number(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError("exponent too large")
        try:
            value = _ARITHMETIC[type(node.op)](left, right)
        except (ArithmeticError, ValueError):  # 1 / 0, 10.0**400
            raise ValueError("not a number") from None
        if isinstance(value, (int, float)) and math.isfinite(value):
            return value
    raise ValueError("not plain arithmetic of numbers")


def _value(node: ast.expr) -> object:
    """A constant's value: a bool or string literal, or a number (arithmetic included)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, str)):
        return node.value
    return _number(node)


def constants(source: str) -> dict[str, Constant]:
    """The module-level UPPER_CASE constants whose value is a literal or plain arithmetic of numbers (`2**19`,
    `40 * 524288`), in file order."""
    found: dict[str, Constant] = {}
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if not (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            continue
        name = node.targets[0].id
        if not name.isupper() or node.lineno != node.end_lineno:
            continue
        try:
            value = _value(node.value)
        except ValueError:
            continue
        line = lines[node.lineno - 1]
        literal = ast.get_source_segment(source, node.value) or repr(value)
        found[name] = Constant(name, value, line, literal)
    return found


def format_literal(value: object) -> str:
    """A short Python literal: floats with 3 significant digits (so values read well and repeat exactly)."""
    if isinstance(value, bool) or isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        text = f"{value:.3g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return repr(value)


def set_constant(path: str, source: str, name: str, value: object) -> Edit:
    """The edit that sets constant `name` to `value`, keeping its quote style and an aligned comment's column."""
    constant = constants(source)[name]
    literal = format_literal(value)
    if isinstance(value, str) and constant.literal.startswith('"'):
        literal = json.dumps(value)
    start = constant.line.index("=") + 1
    head, tail = constant.line[:start], constant.line[start:]
    at = tail.index(constant.literal)
    code, rest = tail[:at] + literal, tail[at + len(constant.literal) :]
    comment = rest.find("#")
    if comment >= 0 and not rest[:comment].strip():  # only spaces between the value and its comment
        spaces = max(min(2, comment), comment - (len(literal) - len(constant.literal)))
        rest = " " * spaces + rest[comment:]
    return Edit(path=path, search=constant.line, replace=head + code + rest)
