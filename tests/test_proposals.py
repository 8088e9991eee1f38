import pytest

from overnight.program import constants, set_constant
from overnight.proposals import (
    Edit,
    Proposal,
    ProposalError,
    apply_proposal,
    compact_change,
    fingerprint,
    unified_diff,
)

FILES = {"train.py": "LR = 1e-3  # learning rate\nDEPTH = 4\n\nprint(LR * DEPTH)\n"}


def proposal(*edits: Edit) -> Proposal:
    return Proposal(hypothesis="h", edits=list(edits))


def test_an_edit_applies_and_leaves_the_original_untouched():
    result = apply_proposal(
        FILES, proposal(Edit(path="train.py", search="DEPTH = 4", replace="DEPTH = 6")), ["train.py"]
    )
    assert "DEPTH = 6" in result["train.py"]
    assert "DEPTH = 4" in FILES["train.py"]
    assert "-DEPTH = 4\n+DEPTH = 6" in unified_diff(FILES, result)


def test_missing_anchor_is_rejected():
    with pytest.raises(ProposalError, match="search text was not found"):
        apply_proposal(
            FILES, proposal(Edit(path="train.py", search="WIDTH = 8", replace="WIDTH = 9")), ["train.py"]
        )


def test_two_matches_are_rejected():
    with pytest.raises(ProposalError, match="occurs 2 times"):
        apply_proposal(FILES, proposal(Edit(path="train.py", search="LR", replace="RATE")), ["train.py"])


def test_forbidden_file_is_rejected():
    edit = Edit(path="prepare.py", search="x", replace="y")
    with pytest.raises(ProposalError, match="'prepare.py', which is not editable"):
        apply_proposal({**FILES, "prepare.py": "x = 1\n"}, proposal(edit), ["train.py"])


def test_paths_that_escape_are_rejected():
    with pytest.raises(ProposalError, match="must stay inside the program folder"):
        apply_proposal(FILES, proposal(Edit(path="../train.py", search="LR", replace="X")), ["train.py"])


def test_syntax_error_is_rejected():
    edit = Edit(path="train.py", search="DEPTH = 4", replace="DEPTH = (4")
    with pytest.raises(ProposalError, match="no longer parses after the edits: line 2"):
        apply_proposal(FILES, proposal(edit), ["train.py"])


def test_fingerprint_ignores_blank_lines_and_trailing_spaces_only():
    spaced = {"train.py": FILES["train.py"].replace("DEPTH = 4\n", "DEPTH = 4   \n\n\n")}
    assert fingerprint(spaced) == fingerprint(FILES)
    changed = {"train.py": FILES["train.py"].replace("DEPTH = 4", "DEPTH = 5")}
    assert fingerprint(changed) != fingerprint(FILES)


def test_set_constant_keeps_the_comment_and_formats_floats():
    edit = set_constant("train.py", FILES["train.py"], "LR", 0.0020000001)
    assert edit.search == "LR = 1e-3  # learning rate"
    assert edit.replace == "LR = 0.002  # learning rate"
    result = apply_proposal(FILES, proposal(edit), ["train.py"])
    assert constants(result["train.py"])["LR"].value == 0.002


def test_set_constant_keeps_aligned_comments_and_quote_style():
    source = 'LEARNING_RATE = 1e-3   # peak rate\nADAM_BETA1 = 0.9       # beta1\nACTIVATION = "gelu"    # nonlinearity\n'
    assert (
        set_constant("t.py", source, "LEARNING_RATE", 0.002).replace == "LEARNING_RATE = 0.002  # peak rate"
    )
    assert set_constant("t.py", source, "ADAM_BETA1", 0.858).replace == "ADAM_BETA1 = 0.858     # beta1"
    assert (
        set_constant("t.py", source, "ACTIVATION", "relu").replace == 'ACTIVATION = "relu"    # nonlinearity'
    )


def test_a_trial_file_never_lands_outside_its_folder(tmp_path):
    """Edits are checked by name first; the trial's folder is checked again after the files are laid out."""
    import pytest

    from overnight.program import copy_program

    program = tmp_path / "program"
    program.mkdir()
    (program / "train.py").write_text("X = 1\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (program / "link.py").symlink_to(outside)
    copy_program(program, tmp_path / "trial", {"train.py": "X = 2\n"})
    assert not (tmp_path / "trial" / "link.py").is_symlink()  # copied as a file: writing it cannot reach out
    for name in ("../outside.txt", str(outside)):
        with pytest.raises(OSError, match="outside the trial's folder"):
            copy_program(program, tmp_path / f"trial-{len(name)}", {name: "rigged\n"})
    assert outside.read_text() == "precious\n"


def test_a_compact_change_names_each_moved_constant_with_its_literals_and_the_other_lines():
    after = {"train.py": "LR = 3e-3  # learning rate, faster\nDEPTH = 4\n\nprint(LR * DEPTH * 2)\n"}
    assert (
        compact_change(FILES, after) == "LR 1e-3 -> 3e-3; train.py: -print(LR * DEPTH) +print(LR * DEPTH * 2)"
    )
    comment_only = {"train.py": FILES["train.py"].replace("# learning rate", "# the learning rate")}
    assert compact_change(FILES, comment_only) == ""  # a comment moves no knob and changes no code
    quoted = {"train.py": 'NAME = "a#b"  # c\n'}
    assert compact_change(quoted, {"train.py": 'NAME = "c#d"  # c\n'}) == 'NAME "a#b" -> "c#d"'


def test_a_compact_change_is_cut_at_whole_parts_and_says_how_many_were_left_out():
    after = {"train.py": "LR = 3e-3  # learning rate\nDEPTH = 6\n\nprint(LR * DEPTH * 2)\n"}
    assert compact_change(FILES, after, limit=45) == "LR 1e-3 -> 3e-3; DEPTH 4 -> 6; ... (1 more)"
    assert compact_change(FILES, after, limit=40) == "LR 1e-3 -> 3e-3; ... (2 more)"
    wide = {"train.py": FILES["train.py"] + "x = " + "+".join(["y"] * 200) + "\n"}
    cut = compact_change(FILES, wide, limit=60)
    assert len(cut) == 60 and cut.startswith("train.py: +x = y+y") and cut.endswith("...")
