"""More hostile inputs (issue 21): YAML 1.1 numbers, routing traces that are special files or hold
counts, layers and experts the model cannot have, and physically impossible systems and models. Each
exits 2 with a message naming the file, the key and the allowed values, prints no traceback, and leaves
an earlier results folder exactly as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.study.config import load_study
from prophet_model.study.yaml_io import parse_yaml

from .conftest import ROOT, dump_yaml, load_yaml
from .test_bad_config import _set
from .test_hostile_inputs import previous, snapshot  # noqa: F401  (previous: a fixture)

Mutation = Callable[[Path], None]
SYS = "systems.2"  # 8xA100 in the default config


def cfg(path: str, value) -> Mutation:
    """Set a key of the study's _config.yml."""

    def mutate(d: Path) -> None:
        data = load_yaml(d / "_config.yml")
        _set(path, value)(data)
        dump_yaml(data, d / "_config.yml")

    return mutate


def cat(file: str, path: str, value) -> Mutation:
    """Set a key of a catalog file (catalog/<file>)."""

    def mutate(d: Path) -> None:
        data = load_yaml(d / "catalog" / file)
        _set(path, value)(data)
        dump_yaml(data, d / "catalog" / file)

    return mutate


def text(old: str, new: str, file: str = "_config.yml") -> Mutation:
    """Replace text in a file (for what a parsed dict cannot express: YAML 1.1 number forms)."""

    def mutate(d: Path) -> None:
        t = (d / file).read_text(encoding="utf-8")
        assert old in t
        (d / file).write_text(t.replace(old, new, 1), encoding="utf-8")

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(d: Path) -> None:
        for m in mutations:
            m(d)

    return mutate


def trace(content: bytes | None = None, make: Callable[[Path], str] | None = None) -> Mutation:
    """Route by a trace: trace.csv with `content`, or the path `make(study_dir)` returns."""

    def mutate(d: Path) -> None:
        name = "trace.csv"
        if make is not None:
            name = make(d)
        else:
            (d / name).write_bytes(content or b"")
        data = load_yaml(d / "_config.yml")
        data["routing"].update(distribution="trace", trace_file=name)
        dump_yaml(data, d / "_config.yml")

    return mutate


def rows(*lines: str) -> bytes:
    return ("layer,expert,count\n" + "".join(f"{line}\n" for line in lines)).encode()


def _fifo(d: Path) -> str:
    os.mkfifo(d / "trace.fifo")
    return "trace.fifo"


def _link(target: str) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        (d / "trace.csv").symlink_to(target)
        return "trace.csv"

    return make


def _huge(d: Path) -> str:
    with open(d / "trace.csv", "wb") as f:
        f.write(b"layer,expert,count\n")
        f.truncate(17 << 20)  # sparse: 17 MiB without writing them
    return "trace.csv"


BATCH = "batch_size_per_gpu: 16"
YAML12 = "numbers follow YAML 1.2"
TRACE_LINE = ["routing.trace_file", "trace.csv line 2", "allowed: layer in 0..31", "expert in 0..127"]

# (id, mutation of a copy of the default study, substrings the message must contain)
CASES: list[tuple[str, Mutation, list[str]]] = [
    # YAML 1.1 number forms: text under YAML 1.2, refused by the schema naming the key
    ("yaml-sexagesimal", text(BATCH, "batch_size_per_gpu: 1:30"), ["workload.batch_size_per_gpu", "'1:30'", YAML12]),
    ("yaml-sexagesimal-hms", text(BATCH, "batch_size_per_gpu: 1:30:00"), ["batch_size_per_gpu", "'1:30:00'"]),
    ("yaml-octal-leading-zero", text("count: 8\n", "count: 010\n"), ["systems.8xA100.count", "'010'", YAML12]),
    ("yaml-underscore", text(BATCH, "batch_size_per_gpu: 1_000"), ["batch_size_per_gpu", "'1_000'", YAML12]),
    ("yaml-binary", text(BATCH, "batch_size_per_gpu: 0b10000"), ["batch_size_per_gpu", "'0b10000'", YAML12]),
    ("yaml-sexagesimal-float", text("reserved_memory_gb: 4", "reserved_memory_gb: 1:30.5"),
     ["workload.reserved_memory_gb", "must be a number", "'1:30.5'", YAML12]),
    ("yaml-boolean-count", text("count: 8\n", "count: yes\n"), ["systems.8xA100.count", "whole number, got True"]),
    ("yaml-negative-batch", text(BATCH, "batch_size_per_gpu: -16"), ["batch_size_per_gpu", "greater than or equal to 1"]),
    # GPU count within the interconnect's board, pair or host
    ("count-1000-on-nvswitch-board", both(cfg(f"{SYS}.count", 1000), cfg(f"{SYS}.hybrid", "auto")),
     ["systems.8xA100.count 1000", "exceeds the 8 GPUs", "'nvswitch_nvlink3'", "allowed: count 1..8"]),
    ("count-4096-on-nvswitch-board", both(cfg(f"{SYS}.count", 4096), cfg(f"{SYS}.hybrid", "auto")),
     ["systems.8xA100.count 4096", "exceeds the 8 GPUs", "none in the catalog"]),
    ("count-16-on-h100-board", both(cfg("systems.1.count", 16), cfg("systems.1.hybrid", "auto")),
     ["systems.4xH100.count 16", "exceeds the 8 GPUs", "'nvswitch_nvlink4'", "allowed: count 1..8"]),
    ("three-gpus-on-an-nvlink-pair", cfg("systems.0.count", 3),
     ["systems.2xA100.count 3", "exceeds the 2 GPUs", "'nvlink3_pair'", "allowed: count 1..2", "nvswitch_nvlink3"]),
    ("twelve-gpus-in-the-pcie-host", both(cfg("systems.3.count", 12), cfg("systems.3.hybrid", "auto")),
     ["systems.10xA6000.count 12", "exceeds the 10 GPUs", "'pcie4_dual_socket'"]),
    ("max-gpus-zero", cat("interconnects.yml", "nvswitch_nvlink3.max_gpus", 0),
     ["interconnects.yml [nvswitch_nvlink3]", "max_gpus", "greater than 0"]),
    ("max-gpus-without-source", cat("interconnects.yml", "nvswitch_nvlink3.sources.max_gpus", ""),
     ["interconnects.yml [nvswitch_nvlink3]", "sources is missing an entry for: max_gpus"]),
    # attention shape
    ("kv-heads-above-heads", cat("models.yml", "seed_128x2gb.num_kv_heads", 64),
     ["models.yml [seed_128x2gb]", "num_kv_heads (64) must divide num_attention_heads (32)", "allowed: 1, 2, 4, 8"]),
    ("kv-heads-not-a-divisor", cat("models.yml", "mixtral_8x7b.num_kv_heads", 12),
     ["models.yml [mixtral_8x7b]", "num_kv_heads (12) must divide", "allowed: 1, 2, 4, 8, 16, 32"]),
    ("head-dim-against-kv-cache", cat("models.yml", "seed_128x2gb.head_dim", 64),
     ["models.yml [seed_128x2gb]", "kv_elements_per_token_per_layer (8192) is not 2 x num_kv_heads x head_dim = 4096",
      "allowed: 4096"]),
    ("heads-beyond-the-attention-weights", cat("models.yml", "seed_128x2gb.num_attention_heads", 1024),
     ["models.yml [seed_128x2gb]", "attention_params_per_layer (67108864) is below the Q, K, V and O projections",
      "allowed: >= "]),
    ("latent-cache-too-small", cat("models.yml", "deepseek_v3.kv_elements_per_token_per_layer", 100),
     ["models.yml [deepseek_v3]", "below num_kv_heads x head_dim = 576", "allowed: >= 576"]),
    ("unknown-attention-kind", cat("models.yml", "seed_128x2gb.attention", "sparse"),
     ["models.yml [seed_128x2gb]", "attention", "'gqa'", "'mla'"]),
    # shared experts
    ("shared-expert-of-size-0", cat("models.yml", "qwen1_5_moe_a2_7b.shared_expert_ffn_size", 0),
     ["models.yml [qwen1_5_moe_a2_7b]", "num_shared_experts (1) and shared_expert_ffn_size (0) disagree",
      "allowed: both 0"]),
    ("shared-size-without-expert", cat("models.yml", "seed_128x2gb.shared_expert_ffn_size", 1024),
     ["models.yml [seed_128x2gb]", "num_shared_experts (0) and shared_expert_ffn_size (1024) disagree"]),
    # study settings
    ("headline-strategy-removed", cfg("study.headline_strategy", "Hybrid"),
     ["study.headline_strategy: 'Hybrid': this key was removed", "allowed: delete study.headline_strategy"]),
    ("hybrid-that-is-ep", cfg(f"{SYS}.hybrid", {"ep": 8, "dp": 1}),
     ["systems.8xA100", "{ep: 8, dp: 1} is EP, not a hybrid split", "allowed: ep > 1 and dp > 1"]),
    ("hybrid-that-is-dp", cfg(f"{SYS}.hybrid", {"ep": 1, "dp": 8}),
     ["systems.8xA100", "{ep: 1, dp: 8} is DP, not a hybrid split", "allowed: ep > 1 and dp > 1"]),
    ("id-300-characters", cfg(f"{SYS}.id", "A" * 300), ["id is 300 characters long", "allowed: at most 64"]),
    ("id-65-characters", cfg(f"{SYS}.id", "A" * 65), ["id is 65 characters long", "allowed: at most 64"]),
    # routing traces: contents
    ("trace-count-1e308", trace(rows("0,0,1e308", "0,1,1e308")), [*TRACE_LINE, "count a number in [0, 9007199254740992]"]),
    ("trace-count-above-2-53", trace(rows("0,0,1e16")), [*TRACE_LINE, "got layer 0, expert 0, count 1e16"]),
    ("trace-count-nan", trace(rows("0,0,nan")), [*TRACE_LINE, "count nan"]),
    ("trace-count-inf", trace(rows("0,0,inf")), TRACE_LINE),
    ("trace-count-negative", trace(rows("0,0,-1")), TRACE_LINE),
    ("trace-layer-5000", trace(rows("5000,0,1")), [*TRACE_LINE, "(0-based: the model's 32 layers)", "got layer 5000"]),
    ("trace-layer-1-based", trace(rows("32,0,1")), [*TRACE_LINE, "got layer 32"]),
    ("trace-expert-equal-to-num-experts", trace(rows("0,128,1")), [*TRACE_LINE, "got layer 0, expert 128"]),
    ("trace-negative-layer", trace(rows("-1,0,1")), ["trace.csv line 2", "whole numbers >= 0"]),
    ("trace-fractional-expert", trace(rows("0,1.5,1")), ["trace.csv line 2", "whole numbers >= 0"]),
    ("trace-duplicate-row", trace(rows("0,3,1", "0,3,2")),
     ["trace.csv line 3", "layer 0 expert 3 is also on line 2", "allowed: one row per layer and expert"]),
    ("trace-four-values", trace(rows("0,0,1,9")), ["trace.csv line 2", "4 values; allowed: 3 (layer,expert,count)"]),
    ("trace-empty", trace(b""), ["routing.trace_file", "needs the header layer,expert,count and at least one row"]),
    ("trace-header-only", trace(rows()), ["routing.trace_file", "needs the header layer,expert,count"]),
    ("trace-all-zero", trace(rows("0,0,0")), ["routing.trace_file", "layer 0 has no routed tokens"]),
    ("trace-not-utf8", trace(b"layer,expert,count\n0,0,\xff\n"), ["routing.trace_file", "not a UTF-8 text file"]),
    # routing traces: files that are not regular files, or too large
    ("trace-is-a-folder", trace(make=lambda d: "catalog"), ["routing.trace_file", "is a folder", "allowed: a routing"]),
    ("trace-dev-zero", trace(make=lambda d: "/dev/zero"),
     ["routing.trace_file", "/dev/zero: not a regular file but a character device", "allowed: a routing trace CSV"]),
    ("trace-dev-null", trace(make=lambda d: "/dev/null"), ["/dev/null: not a regular file but a character device"]),
    ("trace-symlink-to-dev-zero", trace(make=_link("/dev/zero")), ["trace.csv: not a regular file but a character"]),
    ("trace-fifo", trace(make=_fifo), ["routing.trace_file", "trace.fifo: not a regular file but a FIFO"]),
    ("trace-dangling-symlink", trace(make=_link("gone.csv")),
     ["routing.trace_file", "trace.csv: a symbolic link to a missing file (gone.csv)"]),
    ("trace-missing", trace(make=lambda d: "nope.csv"), ["routing.trace_file", "nope.csv: file not found"]),
    ("trace-over-16-mib", trace(make=_huge), ["routing.trace_file", "over 16,777,216 bytes", "under 16,777,216 bytes"]),
    # YAML files that are not regular files
    ("catalog-dev-null", cfg("catalogs.gpus", "/dev/null"), ["/dev/null: not a regular file but a character device",
                                                             "allowed: a YAML file"]),
    ("catalog-dangling-symlink",
     lambda d: ((d / "catalog" / "gone.yml").symlink_to("missing.yml"), cfg("catalogs.gpus", "catalog/gone.yml")(d)),
     ["gone.yml: a symbolic link to a missing file (missing.yml)", "allowed: a YAML file"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(study_dir, previous, capsys, name, mutate, expected) -> None:  # noqa: F811
    mutate(study_dir)
    before = snapshot(previous)
    rc = main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(previous), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err
    for t in expected:
        assert t in err, f"{t!r} not in:\n{err}"
    assert snapshot(previous) == before


@pytest.mark.parametrize(
    ("value", "read"),
    [("1:30", "1:30"), ("1:30:00", "1:30:00"), ("010", "010"), ("1_000", "1_000"), ("0b101", "0b101"),
     ("0o10", 8), ("0x10", 16), ("+5", 5), ("-3", -3), ("0", 0), ("1e9", 1e9), ("1.5", 1.5), (".inf", float("inf"))],
)  # fmt: skip
def test_yaml_numbers_follow_yaml_1_2(value, read) -> None:
    """No sexagesimal, no octal by a leading zero, no '_': those stay text; 0o and 0x are numbers."""
    got = parse_yaml(f"a: {value}\n", "t")["a"]
    assert got == read and type(got) is type(read)


@pytest.mark.parametrize("value", ["0x10", "+16", "0o20"])
def test_yaml_1_2_whole_numbers_are_accepted(study_dir, value) -> None:
    text(BATCH, f"batch_size_per_gpu: {value}")(study_dir)
    assert load_study(study_dir / "_config.yml").config.workload.batch_size_per_gpu == 16


def test_whatif_set_reads_values_as_the_config_does(capsys) -> None:
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100",
               "--set", "workload.batch_size_per_gpu=1:30"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "workload.batch_size_per_gpu" in err and "'1:30'" in err and "Traceback" not in err


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_trace_with_bom_and_crlf_is_read(study_dir, bom, newline) -> None:
    """A trace saved by a spreadsheet (UTF-8 BOM, CRLF) gives the same popularities as a plain one."""
    lines = ["layer,expert,count", "0,0,3", "0,1,1", "1,2,2", "1,3,2"]
    trace(bom + newline.join(lines).encode() + newline.encode())(study_dir)
    study = load_study(study_dir / "_config.yml")
    layers = study.traces[study.routing_trace]
    assert layers[0][:2] == (0.75, 0.25) and layers[1][:2] == (0.5, 0.5) and sum(layers[0]) == 1.0


def test_default_systems_fit_their_interconnects() -> None:
    """Every system of the default study passes the board-size check, with room to spare or exactly."""
    study = load_study(ROOT / "_config.yml")
    assert all(s.count <= s.interconnect.max_gpus for s in study.systems)


def test_results_dir_is_relative_to_the_config(tmp_path, monkeypatch, capsys) -> None:
    """study.results_dir resolves against the config's folder (as the catalogs do), not the working folder,
    and an error about it names study.results_dir, not --results."""
    sub = tmp_path / "study"
    sub.mkdir()
    (sub / "catalog").symlink_to(ROOT / "catalog")
    data = load_yaml(ROOT / "_config.yml")
    data["study"]["results_dir"] = "out"
    dump_yaml(data, sub / "_config.yml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", "--config", str(sub / "_config.yml"), "--quiet", "--no-figures"]) == 0
    assert (sub / "out" / "data" / "all_systems_comparison.csv").is_file() and not list(elsewhere.iterdir())
    capsys.readouterr()
    data["study"]["results_dir"] = "a-file"
    dump_yaml(data, sub / "_config.yml")
    (sub / "a-file").write_text("mine\n")
    rc = main(["run", "--config", str(sub / "_config.yml"), "--quiet", "--no-figures"])
    err = capsys.readouterr().err
    assert rc == 2 and "study.results_dir" in err and "is a file, not a folder" in err
    assert not err.startswith("error: --results") and (sub / "a-file").read_text() == "mine\n"
