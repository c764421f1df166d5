"""Answers for scripts and the release metadata: whatif --format, sweep, compare, --version,
CITATION.cff (validated against the CFF 1.2.0 schema) and .zenodo.json."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prophet_model import __version__
from prophet_model.cli import main

from .conftest import ROOT

SCHEMA = ROOT / ".venv" / "share" / "cff-1.2.0-schema.json"


def _out(capsys) -> tuple[str, str]:
    c = capsys.readouterr()
    return c.out, c.err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and _out(capsys)[0].strip() == f"prophet-artifact {__version__}"


def test_citation_cff_validates_against_the_cff_1_2_0_schema() -> None:
    import jsonschema

    assert SCHEMA.is_file(), "run `make` (scripts/venv.sh fetches the CFF schema)"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(json.loads(json.dumps(cff, default=str)))
    assert cff["cff-version"] == "1.2.0" and cff["version"] == __version__
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate({**cff, "authors": "nobody"})


def test_zenodo_metadata_and_licence_agree() -> None:
    z = json.loads((ROOT / ".zenodo.json").read_text(encoding="utf-8"))
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert z["version"] == __version__ and z["license"] == cff["license"] == "MIT" and z["upload_type"] == "software"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "CC BY 4.0" in text


def bf16_study(study_dir: Path) -> Path:
    """The default study with BF16 weights and KV cache (no FP8 search): not every expert fits in GPU memory, so
    the expert copies, and with them Prophet's inputs, move its throughput (at FP8 every expert is resident)."""
    from .conftest import dump_yaml, load_yaml

    cfg = study_dir / "_config.yml"
    raw = load_yaml(cfg)
    raw["workload"] |= {"weight_precision": "bf16", "kv_precision": "bf16"}
    dump_yaml(raw, cfg)
    return cfg


def test_whatif_formats(capsys, study_dir) -> None:
    # at BF16, 2xA100 fetches experts from host at every batch, so Prophet's accuracy moves its speedup
    cfg = str(bf16_study(study_dir))
    args = ["whatif", "--config", cfg, "--system", "2xA100", "--set", "prophet.prediction_accuracy=0.6"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(_out(capsys)[0])
    assert doc["changes"] == ["prophet.prediction_accuracy=0.6"]
    cases = {(r["strategy"], r["case"]): r for r in doc["rows"]}
    assert cases[("EP", "what-if")]["speedup"] < cases[("EP", "configured")]["speedup"]
    assert cases[("EP", "what-if")]["baseline_tokens_per_s"] == cases[("EP", "configured")]["baseline_tokens_per_s"]
    assert cases[("EP", "what-if")]["prophet_batch"] >= 1 and cases[("EP", "what-if")]["prophet_step_ms"] > 0
    assert main([*args, "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(_out(capsys)[0]))
    assert list(csv.case.unique()) == ["configured", "what-if"] and len(csv) == 6
    json_speedups = [math.nan if r["speedup"] is None else r["speedup"] for r in doc["rows"]]  # Hybrid: none
    assert csv.speedup.tolist() == pytest.approx(json_speedups, rel=1e-8, nan_ok=True)
    assert main(args) == 0 and "What if: prophet.prediction_accuracy=0.6" in _out(capsys)[0]


def test_sweep_is_the_grid_of_the_model(capsys, tmp_path) -> None:
    from prophet_model.study import sensitivity as se
    from prophet_model.study.config import load_study
    from prophet_model.study.runner import run_study

    out = tmp_path / "grid.csv"
    argv = ["sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0,0.5,1",
            "--vary", "interconnect_bandwidth_factor=0.5,2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    df = pd.read_csv(out)
    assert len(df) == 6 and df["prophet.prediction_accuracy"].tolist() == [0, 0, 0.5, 0.5, 1, 1]
    setup = se.setups(run_study(load_study(ROOT / "_config.yml"))[0])["8xA100"]
    one = se.evaluate(
        setup, {"prophet.prediction_accuracy": np.array([0.5]), "interconnect_bandwidth_factor": np.array([2.0])}
    )
    assert df.speedup[3] == pytest.approx(float(one["speedup"][0]), rel=1e-8)
    assert (df.speedup >= 1 - 1e-9).all() and df.speedup.is_monotonic_increasing is not None
    before = out.read_bytes()
    assert main(argv) == 2 and "exists" in _out(capsys)[1]  # never replaced without --force
    assert out.read_bytes() == before
    assert main([*argv, "--force"]) == 0 and out.read_bytes() == before  # deterministic
    for bad, says in ((["--vary", "nope=1"], "not a sweepable input"), (["--vary", "prophet.prediction_accuracy=1.5"],
                      "allowed: numbers in [0, 1]"), (["--vary", "workload.batch_size_per_gpu=2.5"], "whole numbers")):  # fmt: skip
        assert main(["sweep", "--system", "8xA100", *bad]) == 2 and says in _out(capsys)[1]


def test_compare_lists_what_differs(capsys, study_dir, tmp_path) -> None:
    from .conftest import dump_yaml, load_yaml

    a, b = tmp_path / "a", tmp_path / "b"
    cfg = bf16_study(study_dir)  # BF16: experts are fetched, so the accuracy moves Prophet's numbers
    assert main(["run", "--config", str(cfg), "--results", str(a), "--quiet", "--no-figures"]) == 0
    assert main(["run", "--config", str(cfg), "--results", str(b), "--quiet", "--no-figures"]) == 0
    assert main(["compare", str(a), str(b)]) == 0 and "is the same" in _out(capsys)[0]
    raw = load_yaml(cfg)
    raw["prophet"]["prediction_accuracy"] = 0.5
    dump_yaml(raw, cfg)
    c = tmp_path / "c"
    assert main(["run", "--config", str(cfg), "--results", str(c), "--quiet", "--no-figures"]) == 0
    assert main(["compare", str(a), str(c), "--format", "csv"]) == 1
    diff = pd.read_csv(io.StringIO(_out(capsys)[0]))
    # at BF16 and the configured batch 8xA100 Hybrid fetches experts, so the accuracy moves Prophet's numbers
    head = diff[(diff.file == "fixed_batch_comparison.csv") & (diff.row == "8xA100 / Hybrid")]
    assert "prophet_tokens_per_s" in set(head.column) and "baseline_tokens_per_s" not in set(head.column)
    r = head[head.column == "speedup"].iloc[0]
    assert float(r.b) < float(r.a) and float(r.difference) == pytest.approx(float(r.b) - float(r.a))
    assert main(["compare", str(a), str(tmp_path / "none")]) == 2 and "no data/ folder" in _out(capsys)[1]


def test_readme_documents_the_commands() -> None:
    text = (ROOT / "README.md").read_text()
    for cmd in ("whatif", "--format", "sweep", "--vary", "compare", "--version"):
        assert cmd in text, cmd
    assert Path(ROOT / "book" / "intro.md").is_file()


def test_sweep_takes_cache_policies_by_name(capsys) -> None:
    """Policies are named; Prophet's policy never moves the baseline; under skew and reuse the predicted
    cache beats LRU, which beats a static one."""
    argv = ["sweep", "--system", "8xA100", "--vary", "expert_cache.prophet_policy=static,lru,predicted",
            "--vary", "routing.zipf_exponent=1", "--vary", "routing.temporal_reuse=0.5"]  # fmt: skip
    assert main(argv) == 0
    df = pd.read_csv(io.StringIO(_out(capsys)[0]))
    assert df["expert_cache.prophet_policy"].tolist() == ["static", "lru", "predicted"]
    assert df.baseline_tokens_per_s.nunique() == 1
    assert df.prophet_tokens_per_s.is_monotonic_increasing
    assert main(["sweep", "--system", "8xA100", "--vary", "expert_cache.baseline_policy=predicted"]) == 2
    assert "allowed: static, lru" in _out(capsys)[1]
