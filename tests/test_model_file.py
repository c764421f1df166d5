"""Any model from the command line (issue 38, item 6): `whatif`, `sweep` and `solve --model-file config.json`
serve a HuggingFace config's model, read as `catalog add-model` reads it and held in memory; a sweep of a
system given by --gpu --count --interconnect serves its --model; whatif's "(was ...)" is the same system and
model without the --set changes; sweep --plot draws throughput beside the metric under a title naming what is
held."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from prophet_model.cli import main

from .conftest import ROOT

HF = ROOT / "tests" / "data" / "hf"
MIXTRAL = HF / "mixtral_8x7b" / "config.json"  # the published config of the catalog's mixtral_8x7b
H100 = ["--gpu", "h100_sxm5_80gb", "--interconnect", "nvswitch_nvlink4"]
METRICS = ["speedup", "baseline_tokens_per_s", "prophet_tokens_per_s", "baseline_step_ms", "prophet_step_ms"]


def qwen_like(folder: Path, name: str = "me/tiny-qwen-moe", **over) -> Path:
    """A small Qwen2-MoE config.json: 4 layers (the last dense: mlp_only_layers), 16 experts of 256, top 2,
    one shared expert of 512, hidden 512, 8 heads sharing 2 KV heads, bf16."""
    cfg = {
        "_name_or_path": name,
        "architectures": ["Qwen2MoeForCausalLM"],
        "model_type": "qwen2_moe",
        "num_hidden_layers": 4,
        "hidden_size": 512,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 32000,
        "intermediate_size": 1024,
        "moe_intermediate_size": 256,
        "shared_expert_intermediate_size": 512,
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [3],
        "torch_dtype": "bfloat16",
        **over,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def sweep_rows(capsys, *args: str) -> pd.DataFrame:
    assert main(["sweep", *args]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def whatif_doc(capsys, *args: str) -> dict:
    assert main(["whatif", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_sweep_of_a_system_given_by_its_parts_serves_the_model_asked(capsys) -> None:
    """The bug: without --system, --model was ignored (the configured model served). The same question asked
    of a configured system changed to the same parts must give the same numbers."""
    vary = ["--vary", "prophet.prediction_accuracy=0,1"]
    custom = sweep_rows(capsys, *H100, "--count", "8", "--model", "mixtral_8x7b", *vary)
    changed = sweep_rows(capsys, "--system", "4xH100", *H100, "--count", "8", "--model", "mixtral_8x7b", *vary)
    configured_model = sweep_rows(capsys, *H100, "--count", "8", *vary)
    assert custom[METRICS].to_numpy() == pytest.approx(changed[METRICS].to_numpy(), rel=1e-12)
    assert custom.baseline_tokens_per_s.iloc[0] != pytest.approx(configured_model.baseline_tokens_per_s.iloc[0])


def test_the_file_of_a_catalog_model_gives_the_catalog_models_numbers(capsys) -> None:
    """Mixtral's config.json reads to the catalog's mixtral_8x7b, value for value: the same sweep either way."""
    vary = ["--vary", "prophet.prediction_accuracy=0,0.5,1", "--vary", "host_link_bandwidth_factor=0.5,2"]
    by_key = sweep_rows(capsys, "--system", "2xA100", "--model", "mixtral_8x7b", *vary)
    by_file = sweep_rows(capsys, "--system", "2xA100", "--model-file", str(MIXTRAL), *vary)
    assert by_file[METRICS].to_numpy() == pytest.approx(by_key[METRICS].to_numpy(), rel=1e-12, nan_ok=True)
    custom = sweep_rows(capsys, *H100, "--count", "8", "--model-file", str(MIXTRAL), *vary)
    custom_key = sweep_rows(capsys, *H100, "--count", "8", "--model", "mixtral_8x7b", *vary)
    assert custom[METRICS].to_numpy() == pytest.approx(custom_key[METRICS].to_numpy(), rel=1e-12, nan_ok=True)


def test_solve_takes_a_model_file(capsys) -> None:
    args = ["solve", "--system", "2xA100", "--metric", "speedup", "--target", "1.05"]
    args += ["--vary", "host_link_bandwidth_factor"]
    assert main([*args, "--model", "mixtral_8x7b"]) == 0
    by_key = capsys.readouterr().out
    assert main([*args, "--model-file", str(MIXTRAL)]) == 0
    assert capsys.readouterr().out == by_key  # the same model, the same answer


def test_the_question_study_holds_the_files_model_beside_the_catalog(tmp_path) -> None:
    from prophet_model.study.config import load_study
    from prophet_model.study.questions.point import Question

    path = qwen_like(tmp_path)
    study, _, _ = Question(ROOT / "_config.yml", "8xA100", model_file=path).study()
    plain = load_study(ROOT / "_config.yml")
    # 3 of 4 layers MoE; attention 2 x 512 x 64 x (8 + 2) = 655,360 weights; K and V of 2 heads of 64 = 256
    assert (study.model.num_moe_layers, study.model.attention_params_per_layer) == (3, 655_360)
    assert study.model.kv_elements_per_token_per_layer == 256 and study.model.name == "me/tiny-qwen-moe"
    assert study.model_key == "tiny_qwen_moe" and set(plain.models) < set(study.models)
    assert study.config_hash != plain.config_hash  # the hash covers the model given beside the catalog
    (tmp_path / "other").mkdir()
    other = qwen_like(tmp_path / "other", num_experts=32)
    assert Question(ROOT / "_config.yml", "8xA100", model_file=other).study()[0].config_hash != study.config_hash
    twin, _, _ = Question(ROOT / "_config.yml", "8xA100", model_file=MIXTRAL).study()
    assert twin.model_key == "mixtral_8x7b_v0_1" and twin.models["mixtral_8x7b"] == plain.models["mixtral_8x7b"]


def test_a_file_named_as_a_catalog_key_never_replaces_that_model(tmp_path) -> None:
    from prophet_model.study.config import load_study
    from prophet_model.study.questions.point import Question

    study, _, _ = Question(ROOT / "_config.yml", "8xA100", model_file=qwen_like(tmp_path, "mixtral_8x7b")).study()
    assert (
        study.model_key == "mixtral_8x7b_file" and study.models["mixtral_8x7b"] == load_study().models["mixtral_8x7b"]
    )


def test_was_is_the_same_system_and_model_without_the_set_changes(capsys, tmp_path) -> None:
    path = str(qwen_like(tmp_path))
    asked = ["--system", "2xA100", "--model-file", path]
    changed = whatif_doc(capsys, *asked, "--set", "prophet.prediction_accuracy=0.2")
    alone = whatif_doc(capsys, *asked)
    configured = [r for r in changed["rows"] if r["case"] == "configured"]
    assert configured and all(r["model"] == "tiny_qwen_moe" for r in changed["rows"])
    unchanged = [r for r in alone["rows"] if r["case"] == "what-if"]
    assert [r["speedup"] for r in configured] == pytest.approx([r["speedup"] for r in unchanged], nan_ok=True)
    assert main(["whatif", *asked, "--set", "prophet.prediction_accuracy=0.2"]) == 0
    out = capsys.readouterr().out
    assert "(was " in out and "model me/tiny-qwen-moe" in out
    assert main(["whatif", *asked]) == 0  # no --set: nothing to compare with
    assert "(was " not in capsys.readouterr().out


def test_was_is_dropped_with_a_note_where_the_set_changes_make_the_system(capsys) -> None:
    args = ["--system", "8xA100", "--gpu", "h100_sxm5_80gb", "--set", "systems.8xA100.interconnect=nvswitch_nvlink4"]
    args += ["--set", "prophet.prediction_accuracy=0.5"]
    doc = whatif_doc(capsys, *args)
    assert {r["case"] for r in doc["rows"]} == {"what-if"}
    assert any(n.startswith("no '(was ...)'") and "nvswitch_nvlink3" in n for n in doc["notes"])


def test_the_files_name_is_data_wherever_it_is_shown(capsys, tmp_path) -> None:
    path = str(qwen_like(tmp_path, "$\\frac{a}{b}$\nfake line\x1b[31m"))
    assert main(["whatif", "--system", "2xA100", "--model-file", path]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nfake line" not in out and "\\nfake line" in out
    plot = tmp_path / "s.png"
    argv = ["sweep", "--system", "2xA100", "--model-file", path, "--vary", "prophet.prediction_accuracy=0,1"]
    assert main([*argv, "--plot", str(plot)]) == 0  # a $ in the title would start matplotlib's math mode
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.json", "file not found"),
        (lambda d: (d / "bad.json").write_text("{nope") and d / "bad.json", "not JSON"),
        (lambda d: d, "is a folder"),
        (lambda d: HF / "llama_dense" / "config.json", "not an MoE architecture"),
        (lambda d: qwen_like(d, num_experts_per_tok=17), "num_experts_per_tok = 17"),
    ],
    ids=["missing", "not-json", "folder", "dense", "top-k-above-experts"],
)
@pytest.mark.parametrize("command", ["whatif", "sweep", "solve"])
def test_a_bad_model_file_is_one_line_naming_the_flag(capsys, tmp_path, make, says, command) -> None:
    path = make(tmp_path)
    extra = {
        "whatif": [],
        "sweep": ["--vary", "prophet.prediction_accuracy=1"],
        "solve": ["--metric", "speedup", "--target", "2", "--vary", "prophet.prediction_accuracy"],
    }[command]
    assert main([command, "--system", "2xA100", "--model-file", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --model-file {path}") and says in err and "allowed:" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("command", ["whatif", "sweep", "solve"])
def test_model_and_model_file_together_are_refused(capsys, command) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--system", "2xA100", "--model", "mixtral_8x7b", "--model-file", str(MIXTRAL)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--model-file: not allowed with argument --model" in err


def test_the_model_file_flag_is_in_each_commands_help(capsys) -> None:
    for command in ("whatif", "sweep", "solve"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--model-file CONFIG_JSON" in text and "HuggingFace config.json" in text


def test_the_plot_draws_throughput_and_the_metric_under_what_is_held(capsys) -> None:
    from prophet_model.commands.sweep import held, plot
    from prophet_model.study.questions.point import Question
    from prophet_model.study.questions.sweep import sweep_grid
    from prophet_model.study.yaml_io import read_yaml

    items = ["prophet.prediction_accuracy=0,0.5,1", "host_link_bandwidth_factor=0.5,2"]
    done = sweep_grid(Question(ROOT / "_config.yml", "2xA100"), items, read_yaml(ROOT / "_config.yml"), say=print)
    title = held(done.table, done.setup.system.name, done.study.model.name)
    for said in (done.setup.system.name, done.study.model.name, done.setup.strategy, "batch per GPU"):
        assert said in title
    fig = plot(done.table, done.keys, "speedup", title)
    tput, right = fig.axes
    assert "throughput" in tput.get_ylabel() and right.get_ylabel() == "speedup"
    assert len(tput.lines) == 2 * 2 and len(right.lines) == 2  # each variant per host-link value; one per value
    top = max(max(line.get_ydata()) for line in tput.lines)
    assert top == pytest.approx(done.table[["baseline_tokens_per_s", "prophet_tokens_per_s"]].to_numpy().max())
    assert fig._suptitle.get_text().startswith(done.setup.system.name)
    raw = read_yaml(ROOT / "_config.yml")
    batch = sweep_grid(Question(ROOT / "_config.yml", "2xA100"), ["workload.batch_size_per_gpu=8,16"], raw, say=print)
    assert "batch" not in held(batch.table, "S", "M")  # the batch is swept, not held
    capsys.readouterr()
