"""Hostile files (issue 34): every file the artifact reads (catalogs, routing traces, the committed
measurements and NCCL logs, machines.yml) is a regular file of bounded size, checked before use. A folder,
FIFO, device, dangling link, oversized or malformed file exits 2 with one line naming the file (and the
line and column where it applies) and what is allowed: no traceback, no "internal error", no hang, and
a measurement in the wrong form is never silently skipped."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prophet_model.cli import main
from prophet_model.errors import UserError
from prophet_model.measured import measurements, nccl_log, predict_steps
from prophet_model.study import rates
from prophet_model.study.config import load_study
from prophet_model.study.measured_csv import read_env
from prophet_model.study.rawconfig import RawStudy, config_digest

from .conftest import ROOT
from .test_hostile_inputs import previous, snapshot  # noqa: F401  (previous: a fixture)
from .test_hostile_inputs_more import cfg, rows, trace

Mutation = Callable[[Path], None]
MEASURED = ROOT / "validation" / "measurements"
H200 = "nvidia-h200"  # a one-GPU machine whose ceilings and host copies every study reads
CLEAN = ("Traceback", "internal error")


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO opened for reading) fails the test after 60 s instead of hanging it."""

    def stop(*_) -> None:
        raise TimeoutError("a read blocked: a FIFO or device was opened and read")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    """A file of `size` bytes without writing them (mostly a hole)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    """Remove what is at `path` (a copy) and let `make` put something else there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    make(path)


# --- catalogs and traces, through `run` (earlier results left intact) ---------------------------------


def _catalog(make: Callable[[Path], None]) -> Mutation:
    def mutate(d: Path) -> None:
        make(d / "catalog" / "odd.yml")
        cfg("catalogs.gpus", "catalog/odd.yml")(d)

    return mutate


STUDY_CASES = [
    ("catalog-dev-zero", cfg("catalogs.gpus", "/dev/zero"),
     ["catalogs.gpus", "/dev/zero: not a regular file but a character device", "allowed: a YAML file"]),
    ("catalog-fifo", _catalog(os.mkfifo), ["catalogs.gpus", "odd.yml: not a regular file but a FIFO"]),
    ("catalog-folder", _catalog(os.mkdir), ["catalogs.gpus", "odd.yml: is a folder"]),
    ("catalog-over-1-mib", _catalog(lambda p: _sparse(p, 2 << 20, b"a: 1\n")),
     ["catalogs.gpus", "odd.yml: over 1,048,576 bytes", "under 1,048,576 bytes"]),
    ("trace-layer-4300-digits", trace(rows("9" * 4300 + ",0,1")),
     ["trace.csv line 2", "allowed: layer in 0..31", "(4,300 characters)"]),
    ("trace-expert-5000-digits", trace(rows("0," + "1" * 5000 + ",1")),
     ["trace.csv line 2", "expert in 0..127", "(5,000 characters)"]),
    ("trace-count-4300-digits", trace(rows("0,0," + "7" * 4300)),
     ["trace.csv line 2", "count a number in [0, 9007199254740992]", "(4,300 characters)"]),
    ("trace-negative-expert", trace(rows("0,-3,1")), ["trace.csv line 2", "whole numbers >= 0", "expert in 0..127"]),
    ("trace-layer-32-zero-padded", trace(rows("0000000000032,0,1")), ["trace.csv line 2", "allowed: layer in 0..31"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mutate", "expected"), STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_hostile_study_file(study_dir, previous, capsys, name, mutate, expected) -> None:  # noqa: F811
    mutate(study_dir)
    before = snapshot(previous)
    rc = main(["run", "--config", str(study_dir / "_config.yml"), "--results", str(previous), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not any(t in err for t in CLEAN), err
    assert len(err.strip().splitlines()) == 1, err
    for t in expected:
        assert t in err, f"{t!r} not in:\n{err}"
    assert snapshot(previous) == before


def test_trace_zero_padded_index_is_its_value(study_dir) -> None:
    """A layer written 0000000000001 is layer 1 (leading zeros do not push it out of range)."""
    trace(rows("0000000000001,0,3", "0,1,1"))(study_dir)
    assert load_study(study_dir / "_config.yml").routing_trace


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_config_hash_reads_catalogs_bounded(study_dir, special) -> None:
    """The fast path's configuration hash (rawconfig) refuses a catalog that is a FIFO or /dev/zero
    instead of reading it whole or blocking."""
    target = Path("/dev/zero")
    if special == "fifo":
        target = study_dir / "catalog" / "gpus.fifo"
        os.mkfifo(target)
    cats = (target, study_dir / "catalog" / "interconnects.yml", study_dir / "catalog" / "models.yml")
    with pytest.raises(UserError, match="not a regular file"):
        config_digest({}, cats, None)
    cfg("catalogs.gpus", str(target))(study_dir)
    with pytest.raises(UserError, match="not a regular file"):
        RawStudy.load(study_dir / "_config.yml")


# --- the committed measurements, through `whatif` (which reads every machine's ceilings and copies) ----


@pytest.fixture
def measured(tmp_path, monkeypatch) -> Path:
    """A copy of validation/measurements and machines.yml that the study's rates read instead."""
    root = tmp_path / "measurements"
    shutil.copytree(MEASURED, root, symlinks=True)
    machines = tmp_path / "machines.yml"
    shutil.copy(rates.MACHINES, machines)
    monkeypatch.setattr(rates, "MEASUREMENTS", root)
    monkeypatch.setattr(rates, "MACHINES", machines)
    return root


def _edit(fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """A change to a CSV's lines."""

    def make(path: Path) -> None:
        path.write_text("\n".join(fn(path.read_text(encoding="utf-8").splitlines())) + "\n", encoding="utf-8")

    return make


def _cell(row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set one cell (data row `row`, 1-based) of a CSV whose cells hold no commas."""

    def fn(lines: list[str]) -> list[str]:
        j = lines[0].split(",").index(column)
        cells = lines[row].split(",")
        cells[j] = value
        return [*lines[:row], ",".join(cells), *lines[row + 1 :]]

    return _edit(fn)


def _drop_column(column: str) -> Callable[[Path], None]:
    def fn(lines: list[str]) -> list[str]:
        j = lines[0].split(",").index(column)
        return [",".join(c for i, c in enumerate(line.split(",")) if i != j) for line in lines]

    return _edit(fn)


def _in_place(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Keep the file and change it (`make` reads and writes it)."""
    return make


def _instead(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Put something else where the file was."""
    return lambda path: _replace(path, make)


CEIL, COPIES = f"{H200}/ceilings.csv", f"{H200}/measurements.csv"
BENCH = "a CSV that validation/measure.py writes"
MEASURED_CASES = [
    ("copies-folder", COPIES, _instead(os.mkdir), ["measurements.csv: is a folder", BENCH]),
    ("copies-fifo", COPIES, _instead(os.mkfifo), ["measurements.csv: not a regular file but a FIFO", BENCH]),
    ("copies-dangling-link", COPIES, _instead(lambda p: p.symlink_to("gone.csv")),
     ["measurements.csv: a symbolic link to a missing file (gone.csv)"]),
    ("copies-dev-zero", COPIES, _instead(lambda p: p.symlink_to("/dev/zero")),
     ["measurements.csv: not a regular file but a character device"]),
    ("copies-over-16-mib", COPIES, _instead(lambda p: _sparse(p, 17 << 20, b"benchmark,part,median_s\n")),
     ["measurements.csv: over 16,777,216 bytes", "under 16,777,216 bytes"]),
    ("ceilings-folder", CEIL, _instead(os.mkdir), ["ceilings.csv: is a folder"]),
    ("ceilings-empty", CEIL, _instead(lambda p: p.write_bytes(b"")), ["ceilings.csv: empty", BENCH]),
    ("ceilings-header-only", CEIL, _edit(lambda lines: lines[:1]), ["ceilings.csv: a header and no rows", BENCH]),
    ("ceilings-no-median", CEIL, _drop_column("median_s"), ["ceilings.csv line 1: no column median_s", "allowed"]),
    ("ceilings-no-bytes", CEIL, _drop_column("bytes"), ["ceilings.csv: no column bytes of numbers", "allowed"]),
    ("ceilings-nan-time", CEIL, _cell(3, "median_s", "nan"),
     ["ceilings.csv line 4, column median_s: 'nan' is not a finite number", "allowed"]),
    ("ceilings-inf-time", CEIL, _cell(2, "median_s", "inf"), ["line 3, column median_s: 'inf' is not a finite"]),
    ("ceilings-zero-time", CEIL, _cell(2, "median_s", "0"), ["line 3, column median_s: '0' seconds; allowed: a time > 0"]),
    ("ceilings-negative-time", CEIL, _cell(5, "median_s", "-1e-6"), ["line 6, column median_s: '-1e-6' seconds"]),
    ("ceilings-empty-time", CEIL, _cell(5, "median_s", ""), ["line 6, column median_s: empty", "allowed"]),
    ("ceilings-text-bytes", CEIL, _cell(2, "bytes", "lots"), ["line 3, column bytes: 'lots' is not a number"]),
    ("ceilings-4300-digit-bytes", CEIL, _cell(2, "bytes", "9" * 4300), ["line 3, column bytes", "(4,300 characters)"]),
    ("ceilings-no-copies", CEIL, _edit(lambda lines: [ln for ln in lines if "ceiling_copy" not in ln]),
     ["ceilings.csv: 0 ceiling_copy rows", "allowed: at least 2"]),
    ("ceilings-latin-1", CEIL, _in_place(lambda p: p.write_bytes(p.read_bytes().replace(b"NVIDIA", b"NVIDI\xc4", 1))),
     ["ceilings.csv: not a UTF-8 text file", BENCH]),
    ("ceilings-long-row", CEIL, _edit(lambda lines: [*lines, lines[1] + ",extra"]), ["values for 20 columns"]),
    ("copies-header-only", COPIES, _edit(lambda lines: lines[:1]), ["measurements.csv: a header and no rows"]),
    ("copies-zero-time", COPIES, _cell(1, "median_s", "0.0"), ["measurements.csv line 2, column median_s"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "file", "change", "expected"), MEASURED_CASES, ids=[c[0] for c in MEASURED_CASES])
def test_hostile_measurement(measured, capsys, name, file, change, expected) -> None:
    change(measured / file)
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not any(t in err for t in CLEAN), err
    assert len(err.strip().splitlines()) == 1, err
    assert str(measured) in err, err  # the file is named by its path
    for t in expected:
        assert t in err, f"{t!r} not in:\n{err}"


def test_the_copy_of_the_measurements_gives_the_same_rates(measured, capsys) -> None:
    """The fixture's copy is read (a change to it is seen above) and, unchanged, gives the same what-if."""
    assert main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100"]) == 0
    copy = capsys.readouterr().out
    rates.MEASUREMENTS, rates.MACHINES = MEASURED, ROOT / "validation" / "machines.yml"  # undone by monkeypatch
    assert main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100"]) == 0
    assert capsys.readouterr().out == copy


MACHINES_CASES = [
    ("folder-outside", "../../etc:\n  gpu: h200_sxm_141gb\n  interconnect: null\n  ceilings: nvidia-h200\n",
     ["machine '../../etc'", "letters, digits"]),
    ("ceilings-outside", "m:\n  gpu: h200_sxm_141gb\n  interconnect: null\n  ceilings: /etc\n", ["machine 'm'"]),
    ("unknown-key", "m:\n  gpu: h200_sxm_141gb\n  cpu: x\n", ["machine 'm'", "allowed: a mapping of machine"]),
    ("a-list", "- m\n", ["not a mapping of machines"]),
    ("duplicate", "m: {gpu: a}\nm: {gpu: b}\n", ["duplicate key 'm'"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "expected"), MACHINES_CASES, ids=[c[0] for c in MACHINES_CASES])
def test_hostile_machines_file(measured, capsys, name, content, expected) -> None:
    rates.MACHINES.write_text(content, encoding="utf-8")
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not any(t in err for t in CLEAN), err
    assert "machines.yml" in err
    for t in expected:
        assert t in err, f"{t!r} not in:\n{err}"


def test_machines_file_that_is_a_fifo(measured, capsys) -> None:
    _replace(rates.MACHINES, os.mkfifo)
    rc = main(["whatif", "--config", str(ROOT / "_config.yml"), "--system", "8xA100"])
    err = capsys.readouterr().err
    assert rc == 2 and "machines.yml: not a regular file but a FIFO" in err, err


# --- the validation's own readers (the book's validation page): UserError, never another exception ------


def _machines(tmp_path: Path, *names: str) -> Path:
    f = tmp_path / "validation-machines.yml"  # not the fixture's machines.yml, which the study's rates read
    f.write_text("".join(f"{n}: {{gpu: h200_sxm_141gb, interconnect: null, ceilings: {H200}}}\n" for n in names))
    return f


def _expect(call: Callable[[], object], *expected: str) -> None:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for t in expected:
        assert t in message, f"{t!r} not in:\n{message}"


X2_COPIES = "nvidia-h200-x2/measurements.csv"


def _first(path: Path, text: str) -> int:
    """The data row (1-based) of the first line of `path` that holds `text`."""
    return next(i for i, line in enumerate(path.read_text().splitlines()) if text in line)


KERNEL_LINES = "machine,gpu,model,batch,kernel,count,gpu_s\nm,g,mixtral_8x7b,1,k,{count},{gpu_s}\n"
VALIDATION_CASES = [
    ("load-folder", lambda r: _replace(r / H200 / "measurements.csv", os.mkdir),
     lambda r, m, s: measurements.load(r, m), ["measurements.csv: is a folder"]),
    ("load-ranks-fifo", lambda r: (r / H200 / "ranks2").mkdir() or os.mkfifo(r / H200 / "ranks2" / "measurements.csv"),
     lambda r, m, s: measurements.load(r, m), ["ranks2/measurements.csv: not a regular file but a FIFO"]),
    ("load-unknown-benchmark", lambda r: _cell(1, "benchmark", "copy_sideways")(r / COPIES),
     lambda r, m, s: measurements.load(r, m), ["measurements.csv line 2: benchmark 'copy_sideways'", "allowed: copy_h2d"]),
    ("load-no-ep", lambda r: _cell(_first(r / X2_COPIES, ",alltoall,"), "ep", "")(r / X2_COPIES),
     lambda r, m, s: measurements.load(r, _machines(m.parent, "nvidia-h200-x2")),
     ["nvidia-h200-x2/measurements.csv line", "no value in column ep", "alltoall rows with bytes, ep"]),
    ("kernels-zero-count", lambda r: (r / H200 / "decode_kernels.csv").write_text(KERNEL_LINES.format(count=0, gpu_s=1)),
     lambda r, m, s: measurements.decode_kernels(H200, "mixtral_8x7b", 1, r),
     ["decode_kernels.csv line 2, column count: '0' is not a whole number >= 1"]),
    ("kernels-no-model", lambda r: None,
     lambda r, m, s: measurements.decode_kernels(H200, "gpt_moe", 1, r), ["decode_kernels.csv: no kernels of model"]),
    ("decode-unknown-model", lambda r: _cell(1, "model", "gpt_moe")(r / H200 / "decode.csv"),
     lambda r, m, s: predict_steps.decode_table(s, r), ["decode.csv line 2: model 'gpt_moe' is not in the catalog"]),
    ("decode-nan-batch", lambda r: _cell(1, "batch", "nan")(r / H200 / "decode.csv"),
     lambda r, m, s: predict_steps.decode_table(s, r), ["decode.csv line 2, column batch: 'nan' is not a finite"]),
    ("offload-bad-policy", lambda r: _cell(1, "policy", "psychic")(r / H200 / "offload.csv"),
     lambda r, m, s: predict_steps.offload_table(s, r), ["offload.csv line 2: policy 'psychic'", "allowed: baseline"]),
    ("offload-zero-step", lambda r: _cell(1, "step_s", "0")(r / H200 / "offload.csv"),
     lambda r, m, s: predict_steps.offload_table(s, r), ["offload.csv line 2, column step_s"]),
    ("probe-zero-warps", lambda r: _cell(1, "warps", "0")(r / "nvidia-h200-x2" / "probe" / "probe.csv"),
     lambda r, m, s: nccl_log.link_blocks(root=r), ["probe.csv: a copy of another size", "each >= 1"]),
    ("split-missing-part", lambda r: _edit(lambda ls: [ln for ln in ls if ",self_only," not in ln])(
        r / "nvidia-h200-x2" / "alltoall_split.csv"),
     lambda r, m, s: nccl_log.alltoall_split(root=r), ["alltoall_split.csv: a part missing", "self_only"]),
    ("settings-fifo", lambda r: _replace(r / "nvidia-h200-x2" / "nccl-settings" / "default" / "measurements.csv",
                                         os.mkfifo),
     lambda r, m, s: nccl_log.nccl_settings(root=r), ["default/measurements.csv: not a regular file but a FIFO"]),
    ("nccl-log-latin-1", lambda r: (r / "nvidia-h200-x2" / "probe" / "nccl-info-rank0.log").write_bytes(b"NCCL \xe9t\xe9\n"),
     lambda r, m, s: nccl_log.nccl_configuration(root=r), ["nccl-info-rank0.log: not a UTF-8 text file"]),
    ("nccl-log-fifo", lambda r: _replace(r / "nvidia-h200-x2" / "probe" / "nccl-info-rank0.log", os.mkfifo),
     lambda r, m, s: nccl_log.nccl_staging(root=r), ["nccl-info-rank0.log: not a regular file but a FIFO"]),
    ("nccl-log-bad-tuning-row",
     _in_place(lambda r: _edit(lambda ls: [ln.split("Broadcast |")[0] + "Broadcast | 1/2 | x" if "Broadcast |" in ln else ln for ln in ls])(
         r / "nvidia-h200-x2" / "probe" / "nccl-info-rank0.log")),
     lambda r, m, s: nccl_log.nccl_configuration(root=r), ["no tuning-table row for Broadcast"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "change", "read", "expected"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES])
def test_hostile_validation_file(measured, tmp_path, name, change, read, expected) -> None:
    """The validation's readers (run by the book's validation notebook) raise UserError naming the file."""
    study = load_study(ROOT / "_config.yml")  # before the change: the study's own rates read the copy too
    change(measured)
    _expect(lambda: read(measured, _machines(tmp_path, H200), study), *expected)


def test_the_validation_readers_accept_the_committed_files(measured, tmp_path) -> None:
    """Unchanged, the copy reads as the committed files do (the checks refuse nothing that is there)."""
    study = load_study(ROOT / "_config.yml")
    assert len(measurements.load(measured, _machines(tmp_path, H200))) > 0
    assert not predict_steps.decode_table(study, measured).empty
    assert not predict_steps.offload_table(study, measured).empty
    assert nccl_log.nccl_configuration(root=measured)["version"]
    assert not nccl_log.link_blocks(root=measured).empty


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b'{"gpu": "H\xe9"}'), "not a UTF-8 text file"),
        (lambda p: p.write_text('{"gpu": '), "not JSON"),
        (lambda p: p.write_text("[1, 2]"), "a JSON list, not an object"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "env.json"),
        (os.mkfifo, "not a regular file but a FIFO"),
        (lambda p: _sparse(p, 2 << 20, b"{}"), "over 1,048,576 bytes"),
    ],
    ids=["latin-1", "truncated", "a-list", "deep", "fifo", "over-1-mib"],
)
def test_hostile_env_json(tmp_path, make, expected) -> None:
    """A machine's env.json (the book's provenance table) read bounded and checked (read_env)."""
    path = tmp_path / "env.json"
    make(path)
    _expect(lambda: read_env(path), "env.json", expected, "allowed: the env.json")


def test_env_json_of_the_committed_machines() -> None:
    assert read_env(MEASURED / H200 / "env.json")["gpu"]  # type: ignore[index]
    assert read_env(MEASURED / "no-such-machine" / "env.json") is None
