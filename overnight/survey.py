"""What `overnight init` finds in a program before a campaign is written for it: whether the script reads the budget
and the seed the engine gives it, the budget or seed it fixes itself, where each constant is read, and what a brief
run of it prints.

Everything here reads the program's files or runs it in a scratch copy; nothing is written into the program.
"""

from __future__ import annotations

import ast
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from overnight.backends.local import RUN_LOG, LocalBackend
from overnight.program import IGNORED_NAMES, constants
from overnight.trial import ENGINE_METRICS, Outcome, TrialSpec

BUDGET_ENV, SEED_ENV = "OVERNIGHT_TIME_BUDGET", "OVERNIGHT_SEED"
_BUDGET_NAME = re.compile(r"(^|_)(TIME_BUDGET|BUDGET_S|TIME_LIMIT|MAX_SECONDS|TRAIN_SECONDS)($|_)")
_FIXED_SEED = re.compile(r"\b(manual_seed|manual_seed_all|seed|set_seed|PRNGKey)\(\s*\d+\s*\)")


@dataclass(frozen=True)
class Read:
    """One place a constant is read: the file and line, the line's code, and the condition it sits under."""

    path: str
    line: int
    code: str
    condition: str = ""  # e.g. "torch.cuda.is_available()" or "not torch.cuda.is_available()"

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class FixedBudget:
    """A budget the program sets itself, e.g. prepare.py's `TIME_BUDGET = 300`."""

    path: str
    name: str
    seconds: float


@dataclass
class StaticFacts:
    """What the program's code says, without running it."""

    python_files: dict[str, str]  # relative path -> text
    reads_budget: bool
    reads_seed: bool
    fixed_budget: FixedBudget | None
    fixed_seeds: list[str]  # "train.py:12: torch.manual_seed(42)"
    reads: dict[str, list[Read]] = field(default_factory=dict)  # constant of the editable files -> where read


def python_files(program: Path, limit: int = 500) -> dict[str, str]:
    """The program's Python files (caches and local state excluded), by path relative to the program folder."""
    found = {}
    for path in sorted(program.rglob("*.py")):
        relative = path.relative_to(program)
        if any(part in IGNORED_NAMES or part.startswith(".") for part in relative.parts):
            continue
        found[str(relative)] = path.read_text(errors="replace")
        if len(found) >= limit:
            break
    return found


def static_facts(program: Path, editable: list[str]) -> StaticFacts:
    files = python_files(program)
    texts = files.values()
    names = {name for path in editable if path in files for name in constants(files[path])}
    return StaticFacts(
        python_files=files,
        reads_budget=any(BUDGET_ENV in text for text in texts),
        reads_seed=any(SEED_ENV in text for text in texts),
        fixed_budget=fixed_budget(files),
        fixed_seeds=fixed_seeds(files),
        reads=constant_reads(files, names),
    )


def fixed_budget(files: dict[str, str]) -> FixedBudget | None:
    """The first numeric constant named like a time budget (TIME_BUDGET, TIME_LIMIT, ...), in any file."""
    for path, text in files.items():
        for constant in _constants_of(text):
            value = constant.value
            if _BUDGET_NAME.search(constant.name) and isinstance(value, (int, float)) and value > 0:
                return FixedBudget(path, constant.name, float(value))
    return None


def fixed_seeds(files: dict[str, str]) -> list[str]:
    """Lines that seed a generator with a number written in the code, e.g. `torch.manual_seed(42)`."""
    return [
        f"{path}:{number}: {line.strip()}"
        for path, text in files.items()
        for number, line in enumerate(text.splitlines(), 1)
        if _FIXED_SEED.search(line) and not line.lstrip().startswith("#")
    ]


def _constants_of(text: str) -> list:
    """The constants of a file, or none for a file that does not parse (it is not ours to judge)."""
    try:
        return list(constants(text).values())
    except SyntaxError:
        return []


def constant_reads(files: dict[str, str], names: set[str]) -> dict[str, list[Read]]:
    """Every place one of `names` is read, in any of the files, with the if-condition the read sits under."""
    reads: dict[str, list[Read]] = {name: [] for name in names}
    for path, text in files.items():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines()
        assigned = _module_assignments(tree)
        for node, condition in _loads(tree, ""):
            bare = condition.removeprefix("not ")
            if bare in assigned:  # `not use_cuda` -> `not torch.cuda.is_available()`
                condition = condition.removesuffix(bare) + assigned[bare]
            if node.id in reads:
                code = lines[node.lineno - 1].strip()
                reads[node.id].append(Read(path, node.lineno, code, condition))
    return reads


def _module_assignments(tree: ast.Module) -> dict[str, str]:
    """name -> the code it is set to, for module-level one-line `name = ...` statements."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.unparse(node.value)
    return found


def _loads(node: ast.AST, condition: str):
    """(Name node read, the condition around it) for every read below `node`."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        yield node, condition
        return
    if isinstance(node, (ast.If, ast.IfExp)):  # a loop's condition says how often, not whether
        test = ast.unparse(node.test)
        yield from _loads(node.test, condition)
        body = node.body if isinstance(node, ast.If) else [node.body]
        orelse = node.orelse if isinstance(node, ast.If) else [node.orelse]
        for child in body:
            yield from _loads(child, test)
        for child in orelse:
            yield from _loads(child, f"not ({test})" if " " in test else f"not {test}")
        return
    for child in ast.iter_child_nodes(node):
        yield from _loads(child, condition)


def read_summary(reads: list[Read]) -> str:
    """Where a constant is read, in a few words: 'never read', 'read at train.py:41', 'read only when X (...)'."""
    if not reads:
        return "never read: turning it changes nothing"
    wheres = list(dict.fromkeys(read.where() for read in reads))
    places = ", ".join(wheres[:3]) + (" ..." if len(wheres) > 3 else "")
    conditions = {read.condition for read in reads}
    if "" not in conditions and len(conditions) == 1:
        return f"read only when {conditions.pop()} ({places})"
    return f"read at {places}"


@dataclass(frozen=True)
class ProbeRun:
    """One brief run of the program, as a trial runs: its own process group, a scratch copy, the engine's env."""

    seed: int
    budget_s: float
    outcome: Outcome
    exit_code: int | None
    wall_s: float
    log: str
    metrics: dict[str, float]

    @property
    def finished(self) -> bool:
        return self.outcome not in (Outcome.CRASH, Outcome.TIMEOUT, Outcome.INFRA_ERROR, Outcome.OVER_LIMIT)

    def last_lines(self, count: int = 15) -> str:
        lines = [line for line in self.log.replace("\r", "\n").splitlines() if line.strip()]
        return "\n".join(lines[-count:])


def probe(program: Path, command: str, seed: int, budget_s: float, timeout_s: float) -> ProbeRun:
    """Run the program once in a scratch copy with OVERNIGHT_SEED=seed and OVERNIGHT_TIME_BUDGET=budget_s."""
    with tempfile.TemporaryDirectory(prefix="overnight-init-") as scratch:
        backend = LocalBackend(program, Path(scratch), metric="")
        spec = TrialSpec(
            trial_id=f"probe-seed{seed}",
            files={},
            seed=seed,
            command=command,
            time_budget_s=budget_s,
            timeout_s=timeout_s,
            overhead_allowance_s=timeout_s,
        )
        result = backend.run(spec)
        log_path = backend.trial_dir(spec.trial_id) / RUN_LOG
        log = log_path.read_text(errors="replace") if log_path.exists() else result.log_tail
    metrics = {name: value for name, value in result.metrics.items() if name not in ENGINE_METRICS}
    return ProbeRun(
        seed=seed,
        budget_s=budget_s,
        outcome=result.outcome,
        exit_code=result.exit_code,
        wall_s=result.wall_s or result.duration_s,
        log=log,
        metrics=metrics,
    )


def summary_names(log: str) -> list[str]:
    """The `name: value` names printed after the last `---` line (autoresearch's summary block)."""
    lines = log.replace("\r", "\n").splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not marks:
        return []
    pattern = re.compile(r"^\s*([A-Za-z_]\w*):\s*\S+\s*$")
    return [m.group(1) for line in lines[marks[-1] + 1 :] if (m := pattern.match(line))]


_LOWER_IS_BETTER = ("loss", "bpb", "bpc", "error", "perplexity", "nll", "mse", "mae", "regret")
_LOWER_TOKENS = ("err", "ppl", "wer", "cer")
_HIGHER_IS_BETTER = ("acc", "score", "reward", "bleu", "rouge", "auc", "precision", "recall")
_HIGHER_TOKENS = ("f1", "iou", "map")
_HELD_OUT = ("val", "valid", "validation", "eval", "test", "holdout", "dev")


def metric_goal(name: str) -> str | None:
    """minimize or maximize, as the name says (`*loss*`, `*bpb*`, `*error*` / `*acc*`, `*score*`), else None."""
    lowered = name.lower()
    tokens = re.split(r"[^a-z0-9]+", lowered)
    if any(word in lowered for word in _LOWER_IS_BETTER) or any(t in _LOWER_TOKENS for t in tokens):
        return "minimize"
    if any(word in lowered for word in _HIGHER_IS_BETTER) or any(t in _HIGHER_TOKENS for t in tokens):
        return "maximize"
    return None


@dataclass(frozen=True)
class MetricChoice:
    name: str
    goal: str
    why: str
    others: tuple[str, ...] = ()  # other printed names that could be the metric


def metric_candidates(printed: list[str], summary: list[str]) -> list[str]:
    """The printed names that read as a metric, most likely first: in the summary block, named like a validation
    figure, printed last."""
    named = [name for name in printed if metric_goal(name)]

    def rank(name: str) -> tuple:
        held_out = re.split(r"[^a-z0-9]+", name.lower())[0] in _HELD_OUT
        return (name in summary, held_out, printed.index(name))

    return sorted(named, key=rank, reverse=True)


def choose_metric(
    printed: list[str], summary: list[str], metric: str | None = None, goal: str | None = None
) -> MetricChoice | None:
    """The metric and its goal: the ones given, else the likeliest printed name (None when no name reads as a
    metric and none was given; the caller asks)."""
    candidates = metric_candidates(printed, summary)
    if metric is None:
        if not candidates:
            return None
        metric = candidates[0]
        where = "in the summary block after `---`" if metric in summary else "by the script"
        why = f"printed {where}"
    else:
        why = "given with --metric"
    if goal is None:
        goal = metric_goal(metric)
        if goal is None:
            return None
        why += f"; {goal} because of its name"
    else:
        why += f"; {goal} as given with --goal"
    return MetricChoice(metric, goal, why, tuple(c for c in candidates if c != metric))
