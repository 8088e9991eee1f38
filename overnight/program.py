"""The research program: the folder a trial runs in, and the UPPER_CASE constants that act as its knobs."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import operator
import re
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
    """A module-level `NAME = value` line in a script: a literal, plain arithmetic of numbers, or a tuple of them."""

    name: str
    value: object  # bool, int, float, str, or a tuple of ints and floats
    line: str  # the source line, exactly as in the file (the search text of an edit)
    literal: str  # the value as written, e.g. "1e-3", "2**19" or "(0.8, 0.95)"
    span: tuple[int, int] = (0, 0)  # where the value lies in `line` (start, end)
    elements: tuple[tuple[int, int], ...] = ()  # a tuple's: where each element lies in `line`


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
    """A constant's value: a bool or string literal, a number (arithmetic included), or a tuple of numbers."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, str)):
        return node.value
    if isinstance(node, ast.Tuple) and node.elts:
        return tuple(_number(element) for element in node.elts)
    return _number(node)


def constants(source: str) -> dict[str, Constant]:
    """The module-level UPPER_CASE constants whose value is a literal, plain arithmetic of numbers (`2**19`,
    `40 * 524288`) or a tuple of numbers (`(0.8, 0.95)`), in file order."""
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
        # From its one line: ast.get_source_segment splits the whole source again for each constant.
        start, end = span = _span(line, node.value)
        literal = line[start:end] or repr(value)
        parts = node.value.elts if isinstance(node.value, ast.Tuple) else []
        elements = tuple(_span(line, part) for part in parts)
        found[name] = Constant(name, value, line, literal, span, elements)
    return found


def _span(line: str, node: ast.expr) -> tuple[int, int]:
    """Where a one-line node lies in its line, in characters (ast counts UTF-8 bytes)."""
    encoded = line.encode()
    return len(encoded[: node.col_offset].decode()), len(encoded[: node.end_col_offset].decode())


KNOB_NAME = re.compile(r"(?P<constant>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?")


def knob_name(name: str) -> tuple[str, int | None] | None:
    """A knob's constant and element: `LR` -> ("LR", None), `ADAM_BETAS[1]` -> ("ADAM_BETAS", 1); None for a name
    that is neither an UPPER_CASE constant nor an element of one."""
    match = KNOB_NAME.fullmatch(name)
    if match is None or not match["constant"].isupper():
        return None
    return match["constant"], None if match["index"] is None else int(match["index"])


def param_name(name: str) -> str:
    """A knob's name as an MLflow param (whose keys take no brackets): `ADAM_BETAS[1]` -> `ADAM_BETAS.1`."""
    constant, index = knob_name(name) or (name, None)
    return constant if index is None else f"{constant}.{index}"


def _knobs_of(source: str) -> dict[str, object]:
    """A script's knob names and values: each constant, and each element of a tuple as `NAME[i]`."""
    values: dict[str, object] = {}
    for name, constant in constants(source).items():
        if isinstance(constant.value, tuple):
            values.update({f"{name}[{i}]": v for i, v in enumerate(constant.value)})
        else:
            values[name] = constant.value
    return values


def knob_values(editable: list[str], files: dict[str, str]) -> dict[str, object]:
    """Every knob of the editable scripts and its value in these files, in file order: each UPPER_CASE constant,
    and each element of a tuple of numbers as `NAME[i]`. A name defined in two files is the first one's."""
    values: dict[str, object] = {}
    for path in editable:
        if path.endswith(".py") and path in files:
            for name, value in _knobs_of(files[path]).items():
                values.setdefault(name, value)
    return values


def knob_edit(editable: list[str], files: dict[str, str], name: str, value: object) -> Edit:
    """The edit that sets knob `name` (a constant, or `NAME[i]`) to `value` in the first editable script that
    defines it (the one `knob_values` reads)."""
    for path in editable:
        if path.endswith(".py") and path in files and name in _knobs_of(files[path]):
            return set_knob(path, files[path], name, value)
    raise KeyError(f"{name} is not a constant of the editable scripts ({', '.join(editable)})")


def format_literal(value: object) -> str:
    """A short Python literal: a float with the fewest significant digits, 3 to 6, that write it exactly, else
    with 3 (so values read well and repeat exactly: 0.002, 0.9951, 0.0020000001 -> 0.002)."""
    if isinstance(value, bool) or isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        text = next((t for t in (f"{value:.{d}g}" for d in range(3, 7)) if float(t) == value), f"{value:.3g}")
        return text if any(c in text for c in ".en") else text + ".0"
    return repr(value)


POWER_OF_TWO = re.compile(r"2(\s*\*\*\s*)\d+")  # a literal written 2**k


def _written(value: object, old: str) -> str:
    """`value` as a literal in the place of the literal `old`: a string in its quotes, 2**k as 2**k."""
    if isinstance(value, str) and old.startswith('"'):
        return json.dumps(value)
    power = POWER_OF_TWO.fullmatch(old)
    if power and type(value) is int and value >= 1 and value & (value - 1) == 0:
        return f"2{power[1]}{value.bit_length() - 1}"
    return format_literal(value)


def set_constant(path: str, source: str, name: str, value: object) -> Edit:
    """The edit that sets constant `name` to `value`, keeping its quote style, a power of two written 2**k, and an
    aligned comment's column."""
    constant = constants(source)[name]
    literal = _written(value, constant.literal)
    return Edit(path=path, search=constant.line, replace=_rewritten(constant, constant.span, literal))


def set_knob(path: str, source: str, name: str, value: object) -> Edit:
    """The edit that sets knob `name` to `value`: a constant (`set_constant`), or element i of a tuple
    (`ADAM_BETAS[1]`), rewriting only that element and keeping the rest of the line as `set_constant` does."""
    constant, index = knob_name(name) or (name, None)
    if index is None:
        return set_constant(path, source, name, value)
    found = constants(source)[constant]
    if index >= len(found.elements):
        raise KeyError(f"{name}: {constant} has {len(found.elements)} elements")
    start, end = found.elements[index]
    literal = _written(value, found.line[start:end])
    return Edit(path=path, search=found.line, replace=_rewritten(found, (start, end), literal))


def _rewritten(constant: Constant, span: tuple[int, int], literal: str) -> str:
    """The constant's line with `span` (its value, or an element of it) written as `literal`, an aligned comment
    keeping its column where the spaces before it allow."""
    line, start, end = constant.line, *span
    value_end = constant.span[1]
    code, rest = line[:start] + literal + line[end:value_end], line[value_end:]
    comment = rest.find("#")
    if comment >= 0 and not rest[:comment].strip():  # only spaces between the value and its comment
        spaces = max(min(2, comment), comment - (len(literal) - (end - start)))
        rest = " " * spaces + rest[comment:]
    return code + rest
