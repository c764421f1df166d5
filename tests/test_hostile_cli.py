"""Issue 34, the command line: it caps its work (--jobs at the cores, a bound on the configurations one
run evaluates), never shows an internal error (stdout on /dev/full, a C or ASCII console, Ctrl-C at any
moment, a Jinja template that does not parse, an empty CSV to compare) and says only true things (sweep
points beyond max_step_ms, the attention-TP note, --count's and --set's messages, --plot)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from prophet_model import cli
from prophet_model.cli import main
from prophet_model.errors import UserError

from .conftest import ROOT

WHATIF = ["whatif", "--system", "8xA100"]
SLOW = ["sweep", "--system", "8xA100", "--vary", "workload.max_step_ms=1:30:1"]  # 30 runs of the study: 2 s


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prophet_model", *args], cwd=ROOT, capture_output=True,
                          env={**os.environ, **(env or {})}, check=False, **kw)  # fmt: skip


def test_jobs_capped_at_the_cores(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "cores", lambda: 2)
    assert main(["run", "--jobs", "100000", "--systems", "nope", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "note: --jobs 100000 capped at 2 (the cores)" in err and "unknown system 'nope'" in err


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_count_says_gpus(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--system", "8xA100", "--count", value, "--vary", "prophet.prediction_accuracy=1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "GPUs in the system" in err and "processes" not in err


@pytest.mark.parametrize("command", [WHATIF, ["--help"], ["--version"], ["catalog", "add-gpu"]], ids=" ".join)
def test_stdout_on_dev_full(command):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "prophet_model", *command], cwd=ROOT, stdout=full,
                           stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and p.stderr.startswith("error: standard output:")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


@pytest.mark.parametrize("env", [{"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}, {"PYTHONIOENCODING": "ascii"}],
                         ids=["C-locale", "ascii"])  # fmt: skip
def test_ascii_console(env):
    p = _cli(*WHATIF, "--set", "workload.max_step_ms=1", env=env)
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
    out = p.stdout.decode("ascii")  # nothing but ASCII, no escapes: look-alikes
    assert "\\u" not in out and "\\x" not in out
    assert re.search(r"\(was [\d.]+x\)", out), out


def _interrupted(p: subprocess.Popen) -> None:
    _, err = p.communicate(timeout=60)
    assert p.returncode in (130, -signal.SIGINT), (p.returncode, err)  # a shell shows both as 130
    assert b"Traceback" not in err and b"internal error" not in err and b"Exception ignored" not in err, err
    assert sum(line.startswith(b"error:") for line in err.splitlines()) <= 1, err  # said once


def test_sigint_before_python_starts():
    """At once: before Python installs its own handler, the signal ends the process (status -SIGINT). The child
    starts with SIGINT's default action, as from a shell: an ignored SIGINT is inherited through exec, and the test
    runner's worker may hold one (seen in full runs under pytest-xdist, never alone)."""
    p = subprocess.Popen([sys.executable, "-m", "prophet_model", *WHATIF], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    p.send_signal(signal.SIGINT)
    _interrupted(p)


# `python -m prophet_model` as runpy runs it, once the interpreter has started (its site import, before any
# of the package's code, is Python's: a SIGINT there prints Python's traceback); READY is written first
MAIN = """
import os, runpy, sys
os.write(int(sys.argv[1]), b"r")
sys.argv = ["prophet_model", *sys.argv[2:]]
runpy.run_module("prophet_model", run_name="__main__", alter_sys=True)
"""


_RNG = random.Random(34)  # seeded: the same moments on every run
DELAYS_MS = sorted(round(_RNG.uniform(lo, hi)) for lo, hi in [(0, 60)] * 4 + [(60, 200)] * 4)  # imports, command


@pytest.mark.parametrize("delay_ms", DELAYS_MS)
def test_sigint_at_any_moment(delay_ms):
    """Ctrl-C at seeded moments of a 2 s sweep from the package's first statement (its imports take the first
    50 ms, the command the rest): status 130, at most one line, no traceback."""
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-c", MAIN, str(w), *SLOW], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, pass_fds=(w,))  # fmt: skip
    os.close(w)
    assert os.read(r, 1) == b"r"
    os.close(r)
    time.sleep(delay_ms / 1000)
    p.send_signal(signal.SIGINT)
    _interrupted(p)


# SIGINT the moment __main__ (as python -m runs it) imports one of these: the first 50 ms, deterministically
HOOK = """
import os, runpy, signal, sys
TRIGGER = sys.argv[1]
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == TRIGGER:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["prophet_model", *sys.argv[2:]]
runpy.run_module("prophet_model", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["prophet_model.cli", "prophet_model.errors", "prophet_model.workflow.procs",
                                    "prophet_model.commands.whatif", "numpy"])  # fmt: skip
def test_sigint_during_imports(module):
    p = subprocess.Popen([sys.executable, "-c", HOOK, module, *WHATIF], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)  # fmt: skip
    _interrupted(p)


def test_template_syntax_error_names_file_and_line(monkeypatch, tmp_path):
    from prophet_model.outputs import templating

    (tmp_path / "x.tex.j2").write_text("a\n{% if x %}\n{{ y }\n", encoding="utf-8")
    monkeypatch.setattr(templating, "TEMPLATES", tmp_path)
    templating.environment.cache_clear()
    try:
        with pytest.raises(UserError, match=r"x\.tex\.j2:3: unexpected '}'"):
            templating.environment().get_template("x.tex.j2")
    finally:
        templating.environment.cache_clear()


@pytest.mark.parametrize("content", ["", "system_id,speedup\n"], ids=["empty", "header-only"])
def test_compare_empty_csv(tmp_path, capsys, content):
    header = "system_id,system,speedup\n8xA100,x,1.5\n"
    for side, text in (("a", header), ("b", content)):
        (tmp_path / side / "data").mkdir(parents=True)
        (tmp_path / side / "data" / "headline.csv").write_text(text, encoding="utf-8")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "b" / "data" / "headline.csv") in err and "internal" not in err


def test_attention_tp_note_says_what_fails(capsys):
    assert main(["whatif", "--system", "2xA100", "--set", "parallel.attention_tp=8"]) == 0
    out = capsys.readouterr().out
    assert "does not divide the replica's 2 GPU(s)" in out and "neither" not in out and "heads" not in out


@pytest.mark.parametrize("key", ["expectations.x.min", "expectations.99.min"])
def test_set_in_a_list_without_ids(capsys, key):
    assert main([*WHATIF, "--set", f"{key}=1"]) == 2
    err = capsys.readouterr().err
    assert "an entry's position, 0 to" in err and "None" not in err


def test_set_by_position(capsys):
    assert main([*WHATIF, "--set", "expectations.0.min=1"]) == 0


def test_sweep_beyond_max_step_ms_says_so(capsys):
    assert main(["sweep", "--system", "8xA100", "--vary", "workload.max_step_ms=1,1000"]) == 0
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    slow = table[table["workload.max_step_ms"] == 1].iloc[0]
    assert pd.isna(slow.speedup) and pd.isna(slow.prophet_step_ms) and "no batch meets max_step_ms 1" in slow.note
    fast = table[table["workload.max_step_ms"] == 1000].iloc[0]
    assert fast.speedup > 0 and pd.isna(fast.note)


def test_sweep_held_batch_beyond_the_bound(capsys):
    args = [
        "sweep",
        "--system",
        "8xA100",
        "--set",
        "workload.max_step_ms=60",
        "--set",  # BF16 weights and KV cache: batch 64's step takes longer than 60 ms (at FP8 it fits)
        "workload.weight_precision=bf16",
        "--set",
        "workload.kv_precision=bf16",
        "--vary",
        "workload.batch_size_per_gpu=1,64",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert "no batch meets max_step_ms 60" in out[2] and "no batch meets" not in out[1]


@pytest.mark.parametrize("plot", ["s.svg", "missing/s.png"])
def test_sweep_plot_checked_before_writing(tmp_path, capsys, plot):
    out = tmp_path / "s.csv"
    args = ["sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0.5", "--out", str(out)]
    assert main([*args, "--plot", str(tmp_path / plot)]) == 2
    assert not out.exists() and "--plot" in capsys.readouterr().err


def test_sweep_no_empty_figure(tmp_path, capsys):
    out, fig = tmp_path / "s.csv", tmp_path / "s.png"
    args = ["sweep", "--system", "8xA100", "--vary", "workload.max_step_ms=1,2", "--out", str(out), "--plot", str(fig)]
    assert main(args) == 0
    assert out.exists() and not fig.exists() and f"{fig} not written" in capsys.readouterr().err


def test_bound_on_configurations(monkeypatch, capsys):
    from prophet_model.study import size

    monkeypatch.setattr(size, "MAX_CONFIGURATIONS", 100)
    assert main(WHATIF) == 2
    err = capsys.readouterr().err
    assert "configurations" in err and "allowed: at most 100" in err and "--systems" in err


def test_long_run_says_its_estimate(monkeypatch, capsys):
    from prophet_model.study import size

    monkeypatch.setattr(size, "SECONDS_PER_CONFIGURATION", 1.0)
    assert main([*WHATIF, "--format", "csv"]) == 0
    cap = capsys.readouterr()
    assert "estimated time:" in cap.err and "estimated" not in cap.out and "system" in cap.out.splitlines()[0]


def test_cores_respects_affinity():
    assert 1 <= cli.cores() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cli.cores() == len(os.sched_getaffinity(0))


def test_large_sweep_says_its_estimate(monkeypatch, capsys):
    from prophet_model.study.questions import sweep as question

    monkeypatch.setattr(question, "SECONDS_PER_POINT", 10.0)
    assert main(["sweep", "--system", "8xA100", "--vary", "prophet.prediction_accuracy=0.5,1"]) == 0
    cap = capsys.readouterr()
    assert "note: 2 points, estimated time: 20 s" in cap.err and "estimated" not in cap.out


@pytest.mark.parametrize("err", [(28, "No space left on device"), (13, "Permission denied")])
def test_environment_error_is_one_line(monkeypatch, capsys, err):
    def command(args, argv):
        raise OSError(*err, "/results/data/x.csv")

    monkeypatch.setattr(cli, "_command", lambda name: command)
    assert main(WHATIF) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: /results/data/x.csv: {err[1]}; allowed: {lines[0].split('allowed: ')[1]}"]
    assert "internal error" not in lines[0]


@pytest.mark.parametrize(
    ("assignment", "allowed"),
    [("expectations.0.min=9999", "allowed: min <= max"), ("strategies=[EP, EP]", "allowed: each of EP, DP, Hybrid"),
     ("uncertainty.inputs[prophet.prediction_accuracy].low=2", "allowed: low <= high")],
)  # fmt: skip
def test_schema_messages_say_what_is_allowed(capsys, assignment, allowed):
    assert main([*WHATIF, "--set", assignment]) == 2
    assert allowed in capsys.readouterr().err


def test_solve_beyond_max_step_ms_is_unreachable(capsys):
    args = ["solve", "--system", "8xA100", "--set", "workload.max_step_ms=1", "--metric", "speedup", "--target", "1.2",
            "--vary", "prophet.prediction_accuracy"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("unreachable: the model gives no speedup") and "no batch meets max_step_ms 1" in out
