"""Values no reader can hold: integers past Python's 4,300-digit conversion limit or past a float, and values
of thousands of characters, in the config file or in `--set`. Each is one short line (exit 2), never an
internal error, never a message as long as the value."""

from __future__ import annotations

import pytest

from prophet_model.cli import main

BIG = "9" * 5000


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("workload.max_step_ms", BIG, "at most 400 digits"),
        ("study.title", BIG, "at most 400 digits"),
        ("workload.max_step_ms", "0x" + "f" * 500, "at most 400 digits"),
        ("workload.max_step_ms", "1" + "0" * 350, "a float can hold"),
        ("workload.batch_size_per_gpu", '"' + "x" * 3000 + '"', "must be a whole number"),
    ],
    ids=["5000-digits", "5000-digits-title", "long-hex", "past-a-float", "long-text"],
)
def test_a_value_too_large_is_a_short_error(capsys, key, value, says) -> None:
    rc = main(["whatif", "--system", "8xA100", "--set", f"{key}={value}"])
    err = capsys.readouterr().err
    assert rc == 2 and says in err, err[:500]
    assert "internal error" not in err and "Traceback" not in err
    assert all(len(line) < 400 for line in err.splitlines()), [len(x) for x in err.splitlines()]


def test_a_config_file_with_a_5000_digit_integer_is_refused(study_dir, capsys) -> None:
    cfg = study_dir / "_config.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("max_step_ms: null", f"max_step_ms: {BIG}", 1))
    rc = main(["whatif", "--config", str(cfg), "--system", "8xA100"])
    err = capsys.readouterr().err
    assert rc == 2 and "an integer of 5,000 digits" in err and "_config.yml" in err, err[:500]
