"""The runner computes with records; the tables are DataFrames built on first use (study/frames.py).
A record's values must be those the DataFrame gives back, and a command that prints a few numbers must
not import the writers' libraries."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prophet_model.study.frames import promoted

ROOT = Path(__file__).resolve().parents[1]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def test_promoted_gives_back_what_a_dataframe_gives() -> None:
    """Whole numbers beside a missing value or a fraction become floats; a missing key is NaN; bools,
    strings and whole-number columns stay as they are (pandas' int64, float64, bool and object columns)."""
    records = [
        {"ep": 2, "tp": 1, "batch": 4, "ok": True, "note": "", "x": np.float64(0.5), "held": True, "n": 1},
        {"ep": 4, "batch": 8, "ok": False, "note": "why", "x": 2, "n": 2.5},
        {"ep": 8, "tp": 2, "batch": 1, "ok": True, "x": 3.0, "held": False, "n": 3},
    ]
    mine = promoted(records)
    frame = pd.DataFrame(records).to_dict("records")
    assert [list(r) for r in mine] == [list(r) for r in frame]  # the same columns, in the same order
    for m, f in zip(mine, frame, strict=True):
        for k in m:
            assert _same(float(m[k]) if isinstance(m[k], np.floating) else m[k], f[k]), (k, m[k], f[k])
    assert mine[0]["tp"] == 1.0 and isinstance(mine[0]["tp"], float)  # beside a missing tp
    assert mine[1]["ep"] == 4 and type(mine[1]["ep"]) is int  # never missing, never a fraction
    assert isinstance(mine[0]["n"], float)  # beside 2.5


def test_whatif_imports_neither_pandas_nor_the_writers() -> None:
    """`whatif` loads the study, searches it and prints: numpy and PyYAML, nothing else heavy (the config is
    checked by study/strict.py, not pydantic; the rates' median is not np.median, which imports numpy.ma)."""
    code = (
        "import contextlib, io, runpy, sys\n"
        "sys.argv = ['prophet_model', 'whatif', '--system', '8xA100']\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        runpy.run_module('prophet_model', run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "assert 'Prophet tok/s' in out.getvalue(), out.getvalue()\n"
        "print(' '.join(sorted(m for m in ('pandas', 'matplotlib', 'jinja2', 'papermill', 'scipy', 'pydantic', 'numpy.ma') if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"whatif imported: {done.stdout.strip()}"
