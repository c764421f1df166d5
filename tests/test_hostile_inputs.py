"""Hostile inputs, as an artifact evaluator would try them: every one exits 2 with a message naming
the file, the key path and the allowed values, prints no traceback, and leaves earlier results
exactly as they were (a results folder the artifact made, with a file of the user's inside)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from prophet_model.cli import main

from .conftest import ROOT, copy_built, dump_yaml, load_yaml
from .test_bad_config import _DELETE, _set

INF, NAN = float("inf"), float("nan")


def _text(fn: Callable[[str], str]) -> Callable[[Path], None]:
    """A mutation of the file's text (for what a parsed dict cannot express)."""

    def mutate(path: Path) -> None:
        path.write_text(fn(path.read_text(encoding="utf-8")), encoding="utf-8")

    return mutate


def _bytes(data: bytes) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        path.write_bytes(data)

    return mutate


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
)
SYS = "systems.2"  # 8xA100 in the default config

# (id, file, mutation (dict or text), substrings the message must contain)
CASES = [
    (
        "hbm-below-the-measured-rate",
        "catalog/gpus.yml",
        _set("h200_sxm_141gb.memory_bandwidth_gbps", 3000),
        ["validation/measurements/nvidia-h200", "comes out at", "allowed: a share in (0, 1]"],
    ),
    (
        "bad-kernel-structure",
        "_config.yml",
        _set("implementation.kernel_structure", "megakernel"),
        ["implementation.kernel_structure", "'fused'"],
    ),
    (
        "negative-kernel-count",
        "_config.yml",
        _set("implementation.kernels_per_layer", -1),
        ["implementation.kernels_per_layer", "greater than or equal to 0"],
    ),
    (
        "bad-generation",
        "catalog/gpus.yml",
        _set("l40s.generation", "kepler"),
        ["gpus.yml [l40s]", "generation", "'ampere'"],
    ),
    (
        "remote-share-on-one-socket",
        "catalog/interconnects.yml",
        _set("nvlink3_pair.remote_memory_share", 0.5),
        ["interconnects.yml [nvlink3_pair]", "remote_memory_share > 0 needs cpu_sockets: 2"],
    ),
    ("inf-monthly-tokens", "_config.yml", _set("cost.monthly_tokens", INF), ["cost.monthly_tokens", "finite"]),
    ("inf-reserved-memory", "_config.yml", _set("workload.reserved_memory_gb", INF), ["reserved_memory_gb", "finite"]),
    ("nan-accuracy", "_config.yml", _set("prophet.prediction_accuracy", NAN), ["prediction_accuracy", "finite"]),
    (
        "nan-comm-reduction",
        "_config.yml",
        _set("prophet.comm_reduction_factor", NAN),
        ["comm_reduction_factor", "finite"],
    ),
    (
        "nan-claim",
        "_config.yml",
        _set("single_gpu_claim.baseline_tokens_per_s", NAN),
        ["baseline_tokens_per_s", "finite"],
    ),
    ("inf-figure-height", "_config.yml", _set("figures.height_in", INF), ["figures.height_in", "finite"]),
    ("inf-expectation", "_config.yml", _set("expectations.0.max", INF), ["expectations.0.max", "finite"]),
    (
        "nan-uncertainty-low",
        "_config.yml",
        _set("uncertainty.inputs.host_link_bandwidth_factor.low", NAN),
        ["host_link_bandwidth_factor.low", "finite"],
    ),
    (
        "inf-gpu-bandwidth",
        "catalog/gpus.yml",
        _set("a100_sxm4_80gb.memory_bandwidth_gbps", INF),
        ["gpus.yml [a100_sxm4_80gb]", "memory_bandwidth_gbps", "finite"],
    ),
    (
        "nan-gpu-price",
        "catalog/gpus.yml",
        _set("h100_sxm5_80gb.price_usd_per_gpu_hour", NAN),
        ["gpus.yml [h100_sxm5_80gb]", "price_usd_per_gpu_hour", "finite"],
    ),
    (
        "inf-link-latency",
        "catalog/interconnects.yml",
        _set("nvswitch_nvlink3.latency_us", INF),
        ["interconnects.yml [nvswitch_nvlink3]", "latency_us", "finite"],
    ),
    (
        "inf-hidden-size",
        "catalog/models.yml",
        _set("seed_128x2gb.hidden_size", INF),
        ["models.yml [seed_128x2gb]", "hidden_size", "whole number"],
    ),
    ("count-true", "_config.yml", _set(f"{SYS}.count", True), ["systems.8xA100.count", "whole number"]),
    ("count-string", "_config.yml", _set(f"{SYS}.count", "8"), ["systems.8xA100.count", "whole number"]),
    ("count-float", "_config.yml", _set(f"{SYS}.count", 8.0), ["systems.8xA100.count", "whole number"]),
    (
        "batch-fraction",
        "_config.yml",
        _set("workload.batch_size_per_gpu", 16.5),
        ["batch_size_per_gpu", "whole number"],
    ),
    (
        "hybrid-mismatch-by-id",
        "_config.yml",
        _set(f"{SYS}.count", 16),
        ["systems.8xA100", "hybrid split 4x2", "allowed: ep x dp = count"],
    ),
    ("unicode-id", "_config.yml", _set(f"{SYS}.id", "8×A100"), ["8×A100", "not safe for file names", "allowed"]),
    ("space-in-id", "_config.yml", _set(f"{SYS}.id", "8x A100"), ["'8x A100'", "not safe for file names"]),
    ("script-id", "_config.yml", _set(f"{SYS}.id", "<script>"), ["'<script>'", "not safe for file names"]),
    ("macro-collision", "_config.yml", _set("systems.0.id", "4x-H100"), ["4x-H100", "same LaTeX macro", "allowed"]),
    (
        "misspelled-metric",
        "_config.yml",
        _set("expectations.0.metric", "speedupp"),
        ["expectations.0", "'speedupp'", "allowed: baseline_tokens_per_s"],
    ),
    (
        "uncentred-factor",
        "_config.yml",
        _set("uncertainty.inputs.interconnect_bandwidth_factor.low", 0.6),
        ["interconnect_bandwidth_factor", "centred on 1", "allowed"],
    ),
    ("no-systems", "_config.yml", _set("systems", []), ["systems", "at least 1"]),
    ("unknown-section", "_config.yml", _set("workloads", {"batch": 1}), ["workloads", "unknown key"]),
    ("bad-precision", "_config.yml", _set("workload.precision", "int4"), ["workload.precision", "'fp32'"]),
    ("catalog-is-folder", "_config.yml", _set("catalogs.gpus", "catalog"), ["catalog", "is a folder"]),
    (
        "duplicate-key",
        "_config.yml",
        _text(lambda t: t + "\nmodel: mixtral_8x7b\n"),
        ["_config.yml", "duplicate key 'model'"],
    ),
    (
        "duplicate-catalog-key",
        "catalog/gpus.yml",
        _text(lambda t: t + "\nl40s:\n  name: again\n"),
        ["gpus.yml", "duplicate key 'l40s'"],
    ),
    ("alias-bomb", "_config.yml", _text(lambda t: t + "\n" + BOMB), ["_config.yml", "expands to more than"]),
    (
        "huge-document",
        "_config.yml",
        _text(lambda t: t + "\n# " + "x" * (1 << 20) + "\n"),
        ["_config.yml", "bytes; allowed"],
    ),
    ("not-utf8", "_config.yml", _bytes(b"study: \xff\xfe\x00"), ["_config.yml", "not a UTF-8 text file"]),
    ("empty-config", "_config.yml", _bytes(b""), ["_config.yml", "must be a YAML mapping"]),
    ("tab-indented", "_config.yml", _bytes(b"study:\n\ttitle: x\n"), ["_config.yml", "YAML error", "line"]),
    ("deep-nesting", "_config.yml", _bytes(b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n"), ["_config.yml"]),
    ("model-unknown", "_config.yml", _set("model", "gpt-moe"), ["model", "unknown MoE model 'gpt-moe'", "allowed"]),
    ("gpu-unknown", "_config.yml", _set(f"{SYS}.gpu", "b200"), ["systems.8xA100.gpu", "'b200'", "allowed"]),
    ("expectation-min-gt-max", "_config.yml", _set("expectations.0.min", 1e9), ["expectations.0", "greater than max"]),
    ("missing-id", "_config.yml", _set(f"{SYS}.id", _DELETE), ["systems.2.id", "required key is missing"]),
]


@pytest.fixture(scope="module")
def previous(plain_results, tmp_path_factory) -> Path:
    """A results folder from a good run (a copy of the session's), with a file of the user's in it."""
    d = copy_built(plain_results, tmp_path_factory.mktemp("prev") / "results")
    (d / "my_notes.txt").write_text("mine\n")
    return d


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _apply(study_dir: Path, file: str, mutate) -> None:
    target = study_dir / file
    if mutate.__qualname__.startswith("_set."):
        data = load_yaml(target)
        mutate(data)
        dump_yaml(data, target)
    else:
        mutate(target)


@pytest.mark.parametrize(("name", "file", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(study_dir, previous, capsys, name, file, mutate, expected) -> None:
    _apply(study_dir, file, mutate)
    before = snapshot(previous)
    rc = main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(previous), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert snapshot(previous) == before


def _results_case(tmp_path: Path, which: str) -> str:
    if which == "file":
        f = tmp_path / "results.txt"
        f.write_text("not a folder\n")
        return str(f)
    if which == "foreign":
        d = tmp_path / "thesis"
        (d / "chapters").mkdir(parents=True)
        (d / "notes.txt").write_text("my notes\n")
        (d / "chapters" / "chapter1.tex").write_text("\\chapter{One}\n")
        return str(d)
    return {"readonly": "/proc/prophet-results", "cwd": ".", "root": "/", "home": "~", "repo": str(ROOT),
            "parent-of-repo": str(ROOT.parent)}[which]  # fmt: skip


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("file", "is a file, not a folder"),
        ("foreign", "not empty and was not made by this artifact"),
        ("readonly", "cannot create or write the folder"),
        ("cwd", "refusing to write results"),
        ("root", "refusing to write results"),
        ("home", "refusing to write results"),
        ("repo", "refusing to write results"),
        ("parent-of-repo", "refusing to write results"),
    ],
)
def test_results_folder_that_is_not_ours(tmp_path, capsys, monkeypatch, which, expected) -> None:
    """A run never writes into, or deletes from, a folder it did not make; it says how to choose another."""
    monkeypatch.chdir(tmp_path)
    target = _results_case(tmp_path, which)
    before = snapshot(tmp_path)
    rc = main(["run", "--config", str(ROOT / "_config.yml"), "--results", target, "--quiet", "--no-figures"])
    err = capsys.readouterr().err
    assert rc == (1 if which == "readonly" else 2), err  # a folder the system will not let us make: the machine's
    assert expected in err and "--results" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.rglob(".staging-*")) and not list(tmp_path.glob(".*staging*"))


@pytest.mark.parametrize("jobs", ["0", "-3", "two"])
def test_jobs_must_be_a_positive_whole_number(capsys, jobs) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--jobs", jobs])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--jobs" in err and "allowed: " in err


def test_config_that_is_a_folder(tmp_path, capsys) -> None:
    rc = main(["run", "--config", str(tmp_path), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "is a folder" in err and not (tmp_path / "r").exists()


def test_equal_single_gpu_figures_at_full_accuracy_are_not_a_crash(study_dir, tmp_path, capsys) -> None:
    """Baseline = Prophet single-GPU throughput with accuracy 1.0 once divided by zero."""
    cfg = study_dir / "_config.yml"
    data = load_yaml(cfg)
    data["prophet"]["prediction_accuracy"] = 1.0
    del data["uncertainty"]["inputs"]["prophet.prediction_accuracy"]
    data["single_gpu_claim"]["prophet_tokens_per_s"] = data["single_gpu_claim"]["baseline_tokens_per_s"]
    dump_yaml(data, cfg)
    rc = main(["run", "--config", str(cfg), "--results", str(tmp_path / "r"), "--quiet", "--no-figures"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err


def test_run_into_a_copy_keeps_a_users_file(plain_results, tmp_path) -> None:
    """A file of the user's inside an artifact folder survives every later run."""
    d = copy_built(plain_results, tmp_path / "r")  # the default study's run --no-figures
    cfg = str(ROOT / "_config.yml")
    (d / "notes.txt").write_text("keep me\n")
    (d / "data" / "my_table.csv").write_text("a\n1\n")
    assert main(["run", "--config", cfg, "--results", str(d), "--quiet", "--no-figures"]) == 0
    assert (d / "notes.txt").read_text() == "keep me\n" and (d / "data" / "my_table.csv").is_file()
    assert main(["clean", "--config", cfg, "--results", str(d)]) == 0
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) == [
        ".prophet-results",
        "data/my_table.csv",
        "notes.txt",
    ]
