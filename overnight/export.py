"""The champion, handed to a person for review: its files in a folder, or its lineage as commits on a git branch.

Both are built from MLflow alone (`Memory.champion_versions`). The branch is written with git's plumbing and a
temporary index, so the user's working tree, index, current branch and HEAD are never touched.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from overnight.memory.records import ChampionVersion
from overnight.report import lineage_markdown


class ExportError(Exception):
    """An export refused before anything is written; the message says why and what to do."""


@dataclass(frozen=True)
class BranchExport:
    repository: Path
    branch: str
    base: str  # the commit the branch starts from (HEAD when it was made)
    commits: tuple[str, ...]  # oldest first


def check_folder(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a folder with something in it (unless force)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty; choose another folder, or pass --force to write into it")


def export_folder(versions: list[ChampionVersion], out: Path, metric: str, force: bool = False) -> list[Path]:
    """Write the champion's editable files, LINEAGE.md and champion.patch (the diff from the program as shipped)."""
    check_folder(out, force)
    champion = versions[-1]
    written = []
    for name, text in sorted(champion.files.items()):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "LINEAGE.md").write_text(lineage_markdown(versions, metric))
    (out / "champion.patch").write_text(champion.cumulative_diff)
    return [*written, out / "LINEAGE.md", out / "champion.patch"]


def git_target(program: Path, branch: str) -> tuple[Path, str]:
    """The repository holding the program folder and the folder's path in it, or ExportError saying why not."""
    if not program.is_dir():
        raise ExportError(f"the program folder {program} does not exist")
    inside = _git(program, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise ExportError(
            f"the program folder {program} is not in a git work tree; use --out DIR, or `git init` it first"
        )
    top = Path(_git(program, "rev-parse", "--show-toplevel").stdout.strip())
    if _git(top, "check-ref-format", "--branch", branch, check=False).returncode != 0:
        raise ExportError(f"{branch!r} is not a valid branch name")
    if _git(top, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0:
        raise ExportError(f"branch {branch} already exists in {top}; choose another name, or delete it first")
    if _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).returncode != 0:
        raise ExportError(f"the repository {top} has no commit yet to start a branch from")
    prefix = program.resolve().relative_to(top.resolve()).as_posix()
    return top, "" if prefix == "." else prefix


def export_branch(versions: list[ChampionVersion], program: Path, branch: str, metric: str) -> BranchExport:
    """Create `branch` from HEAD with one commit per champion version after the program as shipped.

    Each commit's tree is HEAD's with the program's editable files replaced by that version's. When HEAD's files
    are not the ones the campaign started from, a first commit sets them to it, so every later commit shows exactly
    one version's change.
    """
    top, prefix = git_target(program, branch)
    base = _git(top, "rev-parse", "HEAD^{commit}").stdout.strip()
    env = {**os.environ, **_identity(top)}
    with tempfile.TemporaryDirectory(prefix="overnight-export-") as scratch:
        env["GIT_INDEX_FILE"] = str(Path(scratch) / "index")
        _git(top, "read-tree", base, env=env)
        tree = _git(top, "write-tree", env=env).stdout.strip()
        steps = [(version, _message(version, metric)) for version in versions[1:]]
        steps.insert(0, (versions[0], "overnight: the program as the campaign started from it"))
        parent, commits = base, []
        for version, message in steps:
            for name, text in sorted(version.files.items()):
                path = str(PurePosixPath(prefix) / name) if prefix else name
                blob = _git(top, "hash-object", "-w", "--stdin", "--path", path, input=text).stdout.strip()
                mode = _mode(top, path, env)
                _git(top, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            new_tree = _git(top, "write-tree", env=env).stdout.strip()
            if new_tree == tree:
                continue  # HEAD already holds the files the campaign started from
            parent = _git(top, "commit-tree", new_tree, "-p", parent, "-m", message, env=env).stdout.strip()
            commits.append(parent)
            tree = new_tree
    # Created only if it still does not exist (the empty old value), so a racing branch is never overwritten.
    _git(top, "update-ref", "-m", "overnight export", f"refs/heads/{branch}", parent, "", env=env)
    return BranchExport(top, branch, base, tuple(commits))


def _message(version: ChampionVersion, metric: str) -> str:
    value = f"{version.metric:.6g}" if version.metric is not None else "-"
    gain = f"{version.confirmed_gain:.6g}" if version.confirmed_gain is not None else "-"
    lines = [
        f"overnight: {version.trial_id}: {version.hypothesis}",
        "",
        f"{metric}: {value}",
        f"confirmed gain: {gain}",
    ]
    if version.verdict:
        lines.append(f"verdict: {version.verdict}")
    lines.append(f"MLflow run: {version.run_id}")
    return "\n".join(lines) + "\n"


def _mode(top: Path, path: str, env: dict[str, str]) -> str:
    """Keep a file's mode (e.g. executable) when HEAD has it; a new file is a plain one."""
    listed = _git(top, "ls-files", "--stage", "--", path, env=env).stdout.split()
    return listed[0] if listed else "100644"


def _identity(top: Path) -> dict[str, str]:
    """The user's git identity when set; otherwise a stand-in, so commits can be made in any repository."""
    if _git(top, "var", "GIT_COMMITTER_IDENT", check=False).returncode == 0:
        return {}
    return {
        "GIT_AUTHOR_NAME": "overnight",
        "GIT_AUTHOR_EMAIL": "overnight@localhost",
        "GIT_COMMITTER_NAME": "overnight",
        "GIT_COMMITTER_EMAIL": "overnight@localhost",
    }


def _git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=env, input=input, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ExportError("git is not installed (or not on PATH); use --out DIR instead") from None
    if check and result.returncode != 0:
        raise ExportError(f"git {' '.join(args[:2])} failed in {cwd}: {result.stderr.strip()}")
    return result
