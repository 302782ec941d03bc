"""Messages name settings the way their reader writes them: flags for a command-line job's user, keyword arguments
for a program calling the library (a user walk found "--overwrite (overwrite=True from Python)" on the command
line, and library exceptions that named flags a notebook has not got)."""

import threading

import pytest

from deepfl import wording
from deepfl.jobs import SettingsChanged, check_settings


@pytest.mark.parametrize(
    ("value", "command_line", "library"),
    [
        (wording._NO_VALUE, "--epochs", "epochs"),
        (True, "--epochs", "epochs=True"),
        (False, "--noepochs", "epochs=False"),
        (3, "--epochs=3", "epochs=3"),
        ("imagenet", "--epochs=imagenet", "epochs='imagenet'"),
        ((384, 512), "--epochs=384,512", "epochs=(384, 512)"),
        (["ssim", "gmsd"], "--epochs=ssim,gmsd", "epochs=['ssim', 'gmsd']"),
        (None, "--epochs=None", "epochs=None"),
    ],
)
def test_a_setting_is_named_as_its_caller_writes_it(value, command_line, library):
    args = () if value is wording._NO_VALUE else (value,)
    assert wording.setting("epochs", *args) == library
    with wording.command_line_names():
        assert wording.setting("epochs", *args) == command_line
    assert wording.setting("epochs", *args) == library  # the block's setting ends with it


def test_the_command_line_setting_stays_with_its_thread_and_block():
    seen = []
    with wording.command_line_names():
        assert wording.by_caller("flags", "arguments") == "flags"
        worker = threading.Thread(target=lambda: seen.append(wording.on_command_line()))
        worker.start()
        worker.join()
    assert seen == [False]  # a thread a library starts does not inherit it (deepfl.fr.running copies it on purpose)
    assert wording.by_caller("flags", "arguments") == "arguments"


def test_a_settings_refusal_tells_each_caller_what_to_type(tmp_path):
    record = tmp_path / "settings.json"
    check_settings(record, {"epochs": 2})
    with pytest.raises(SettingsChanged) as from_python:
        check_settings(record, {"epochs": 3})
    with wording.command_line_names(), pytest.raises(SettingsChanged) as from_command:
        check_settings(record, {"epochs": 3})
    python_text, command_text = str(from_python.value), str(from_command.value)
    assert "rerun with the earlier arguments to resume" in python_text and "pass overwrite=True" in python_text
    assert "--" not in python_text
    assert "rerun with the earlier flags to resume" in command_text and "pass --overwrite to" in command_text
    assert "overwrite=True" not in command_text and "arguments" not in command_text


def test_a_changed_setting_is_shown_as_its_flag_takes_it(tmp_path):
    """Sizes are recorded as lists of strings; a refusal showed them as JSON (`crop_size ["96", "96"] -> ["64",
    "64"]`, a cluster walk, session 40), not as what to type (`96,96`)."""
    assert [wording.shown_value(v) for v in (["96", "96"], None, "", [], True, "cosine", 0.0001, {"a": 1})] == [
        "96,96",
        "unset",
        "unset",
        "unset",
        "true",
        "cosine",
        "0.0001",
        '{"a": 1}',
    ]
    record = tmp_path / "settings.json"
    check_settings(record, {"crop_size": ["96", "96"], "lr_schedule": "cosine"})
    with (
        wording.command_line_names(),
        pytest.raises(SettingsChanged, match=r"\(crop_size 96,96 -> 64,64; lr_schedule cosine -> "),
    ):
        check_settings(record, {"crop_size": ["64", "64"], "lr_schedule": "constant"})
