from pathlib import Path

import pytest
import yaml

from overnight.config import ConfigError, ConfigWarning, default_config_path, load_config


def write(tmp_path: Path, data: dict, program: Path) -> Path:
    data = {"name": "c", "program": str(program), "metric": {"name": "loss"}, **data}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_bundled_config_is_valid():
    config = load_config(default_config_path())
    assert config.metric.name == "val_bpb"
    assert config.editable == ["train.py"]
    assert (config.program / "prepare.py").is_file()


def test_relative_program_resolves_against_the_config_file(quadratic):
    config = load_config(quadratic / "campaign.yaml")
    assert config.program == quadratic.resolve()


def test_overrides_set_dotted_keys(quadratic):
    config = load_config(quadratic / "campaign.yaml", {"budget.waves": 7, "wave_size": 3})
    assert (config.budget.waves, config.wave_size) == (7, 3)


def test_the_old_key_budget_iterations_still_loads_and_names_its_new_name(tmp_path, quadratic):
    path = write(tmp_path, {"budget": {"iterations": 5}}, quadratic)
    with pytest.warns(ConfigWarning, match=r"budget.iterations is now budget.waves"):
        assert load_config(path).budget.waves == 5
    both = write(tmp_path, {"budget": {"iterations": 5, "waves": 3}}, quadratic)
    with pytest.raises(ConfigError, match="keep only waves"):
        load_config(both)


def test_a_stage_without_settings_of_its_own_takes_the_trial_settings_as_numbers(tmp_path, quadratic):
    data = {"trial": {"time_budget_s": 10, "timeout_s": 30}, "decision": {"confirm": {"time_budget_s": 20}}}
    config = load_config(write(tmp_path, data, quadratic))
    screen, confirm = config.stage("screen"), config.stage("confirm")
    assert (screen.budget_s, screen.timeout_s) == (10.0, 30.0)
    assert (confirm.budget_s, confirm.timeout_s) == (20.0, 60.0)  # the timeout grows with the budget


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"wave_sise": 2}, "wave_sise: unknown key; valid keys here: name, program"),
        (
            {"trial": {"time_budget_s": 60, "timout_s": 5}},
            "trial.timout_s: unknown key; valid keys here: time_budget_s",
        ),
        (
            {"metric": {"name": "loss", "goal": "lowest"}},
            "metric.goal: Input should be 'minimize' or 'maximize'",
        ),
        ({"wave_size": 0}, "wave_size: Input should be greater than or equal to 1"),
        (
            {"trial": {"time_budget_s": 60, "timeout_s": 30}},
            "timeout_s (30.0) must be larger than time_budget_s",
        ),
        ({"editable": ["../escape.py"]}, "must be a path inside the program folder"),
        ({"editable": ["missing.py"]}, "editable: 'missing.py' is not a file"),
        (
            {"knobs": [{"name": "X", "type": "float", "low": 5, "high": 1}]},
            "'low' (5.0) must be below 'high' (1.0)",
        ),
        ({"knobs": [{"name": "X", "type": "float"}]}, "type 'float' needs both 'low' and 'high'"),
        (
            {"knobs": [{"name": "NOPE", "type": "int", "low": 1, "high": 3}]},
            "knobs.0.name: NOPE is not an UPPER_CASE",
        ),
        (
            {"knobs": [{"name": "MODE", "type": "choice", "choices": ["a"]}]},
            "needs 'choices' with at least two",
        ),
        (
            {"budget": {"deadline": "soon"}},
            "budget.deadline: 'soon' is neither a time of day like '07:00' nor a duration",
        ),
        ({"planner": {"kind": "oracle"}}, "planner.kind: Input should be 'auto', 'claude' or 'offline'"),
    ],
)
def test_bad_configs_name_the_field_and_the_problem(tmp_path, quadratic, change, expected):
    path = write(tmp_path, change, quadratic)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert expected in str(error.value)


def test_missing_required_fields_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: c\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "program: required, but missing" in str(error.value)
    assert "metric: required, but missing" in str(error.value)


def test_a_missing_program_folder_is_named(tmp_path):
    path = write(tmp_path, {}, tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="program: folder .*nowhere does not exist"):
        load_config(path)


def test_broken_yaml_and_missing_files_are_clear(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_tracking_uri_precedence(quadratic, monkeypatch):
    config = load_config(quadratic / "campaign.yaml")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        config.resolved_tracking_uri().startswith("sqlite:///")
        and "mlflow.db" in config.resolved_tracking_uri()
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert config.resolved_tracking_uri() == "http://127.0.0.1:5999"
    explicit = config.model_copy(update={"tracking_uri": "sqlite:////tmp/x.db"})
    assert explicit.resolved_tracking_uri() == "sqlite:////tmp/x.db"
