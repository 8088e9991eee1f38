"""Small helpers shared by tests."""

from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def configure_campaign(program: Path, **changes) -> Path:
    """Set top-level keys of a test program's campaign.yaml (stores, budgets, planner); returns its path."""
    import yaml

    path = program / "campaign.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


SYNTHETIC = Path(__file__).resolve().parents[1] / "overnight" / "programs" / "synthetic"


def load_synthetic():
    """The synthetic program's truth module (expected_score, measure, NOISE_SIGMA...) and its default knob values."""
    import importlib.util

    from overnight.program import constants

    spec = importlib.util.spec_from_file_location("synthetic_truth", SYNTHETIC / "truth.py")
    truth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(truth)
    found = constants((SYNTHETIC / "train.py").read_text())
    return truth, {name: found[name].value for name in truth.KNOBS}
