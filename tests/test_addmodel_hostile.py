"""`catalog add-model` and `catalog add-gpu` take any input as data (issue 34): every config.json value read
is checked for type and range (one `error:` line naming the file and the field, exit 2, no traceback), a
quantised model is sized by its quantization_config, and the YAML written has exactly one top-level key
whatever the model's name, the file's name or --name hold. In-process through prophet_model.cli.main."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from prophet_model.cli import main
from prophet_model.study.catalog import MoEModel
from prophet_model.study.hfconfig import display

ROOT = Path(__file__).resolve().parents[1]

MIXTRAL = {  # mistralai/Mixtral-8x7B-v0.1's shapes
    "_name_or_path": "mistralai/Mixtral-8x7B-v0.1", "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
    "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
    "rope_theta": 1e6, "torch_dtype": "bfloat16",
}  # fmt: skip
QWEN = {  # Qwen/Qwen1.5-MoE-A2.7B's shapes
    "_name_or_path": "Qwen/Qwen1.5-MoE-A2.7B", "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
    "decoder_sparse_step": 1, "hidden_size": 2048, "intermediate_size": 5632, "moe_intermediate_size": 1408,
    "num_attention_heads": 16, "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
    "num_key_value_heads": 16, "shared_expert_intermediate_size": 5632, "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}  # fmt: skip
DEEPSEEK = {  # deepseek-ai/DeepSeek-V3's shapes, shipped in FP8
    "_name_or_path": "deepseek-ai/DeepSeek-V3", "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3", "first_k_dense_replace": 3, "hidden_size": 7168, "intermediate_size": 18432,
    "kv_lora_rank": 512, "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
    "num_key_value_heads": 128, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "torch_dtype": "bfloat16", "v_head_dim": 128, "vocab_size": 129280,
}  # fmt: skip
BASES = {"mixtral": MIXTRAL, "qwen": QWEN, "deepseek": DEEPSEEK}


def add_model(capsys, path: Path, *extra: str) -> tuple[int, str, str]:
    """(exit code, standard output, standard error) of `catalog add-model --from path ...`."""
    code = main(["catalog", "add-model", "--from", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, content: dict | str | bytes, name: str = "config.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def with_value(base: str, key: str, value: object) -> dict:
    cfg = copy.deepcopy(BASES[base])
    cfg[key] = value
    return cfg


def assert_refused(code: int, out: str, err: str, *says: str) -> None:
    """Exit 2, nothing on standard output, one short `error: ...; allowed: ...` line naming `says`."""
    assert code == 2, err
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err and "allowed: " in err, err
    assert len(err) < 1200, len(err)
    for said in says:
        assert said in err, (said, err)


def one_entry(out: str) -> tuple[str, dict]:
    """The single (key, entry) of the YAML printed; the lines above it are the two-line header comment."""
    doc = yaml.safe_load(out)
    assert isinstance(doc, dict) and len(doc) == 1, doc
    key = next(iter(doc))
    lines = out.splitlines()
    assert [line.startswith("# ") for line in lines[:3]] == [True, True, False] and lines[2] == f"{key}:", lines[:3]
    assert not any(line.startswith("#") for line in lines[3:])
    return key, doc[key]


# 1. every value read is checked for type and range ------------------------------------------------------------

BAD_VALUES = [
    ("deepseek", "q_lora_rank", "1536"),  # a string
    ("deepseek", "q_lora_rank", -1),  # negative: the attention weights would shrink
    ("deepseek", "n_shared_experts", -1),
    ("deepseek", "kv_lora_rank", 0),
    ("deepseek", "moe_layer_freq", 0),  # zero: a division by zero
    ("deepseek", "first_k_dense_replace", "3"),
    ("deepseek", "v_head_dim", [128]),  # a list
    ("deepseek", "vocab_size", 10**20),  # a huge integer
    ("deepseek", "qk_rope_head_dim", 64.5),
    ("qwen", "decoder_sparse_step", 1.5),  # fractional
    ("qwen", "decoder_sparse_step", 0),
    ("qwen", "decoder_sparse_step", "2"),
    ("qwen", "shared_expert_intermediate_size", -5632),  # a negative shared expert
    ("qwen", "shared_expert_intermediate_size", "5632"),
    ("qwen", "num_experts", {"n": 60}),  # an object
    ("qwen", "num_attention_heads", True),  # a bool is not a whole number
    ("qwen", "mlp_only_layers", "0"),
    ("qwen", "mlp_only_layers", [0, 0]),
    ("qwen", "mlp_only_layers", [24]),
    ("qwen", "mlp_only_layers", [True]),
    ("mixtral", "hidden_size", 0),
    ("mixtral", "hidden_size", -4096),
    ("mixtral", "intermediate_size", 14336.0),  # a whole number is written without a decimal point
    ("mixtral", "num_hidden_layers", float("inf")),
    ("mixtral", "num_hidden_layers", 2**40),
    ("mixtral", "num_key_value_heads", 7),  # must divide the 32 query heads
    ("mixtral", "num_experts_per_tok", 9),  # more than the 8 experts
    ("mixtral", "head_dim", 0),
    ("mixtral", "head_dim", "128"),
    ("mixtral", "_name_or_path", ["mistralai/Mixtral-8x7B-v0.1"]),
    ("mixtral", "_name_or_path", "m" * 100_000),
    ("mixtral", "torch_dtype", "int4"),
    ("mixtral", "torch_dtype", ["bfloat16"]),
    ("mixtral", "quantization_config", "gptq"),
    ("mixtral", "quantization_config", {"quant_method": "hqq", "nbits": 4}),
    ("mixtral", "quantization_config", {"quant_method": ["gptq"], "bits": 4}),
    ("mixtral", "quantization_config", {"quant_method": "gptq", "bits": 5}),
    ("mixtral", "quantization_config", {"quant_method": "gptq", "bits": True}),
    ("mixtral", "quantization_config", {"quant_method": "gptq"}),
    ("mixtral", "quantization_config", {"quant_method": "awq", "bits": 3}),
    ("mixtral", "quantization_config", {"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": True}),
    ("mixtral", "quantization_config", {"quant_method": "bitsandbytes", "load_in_4bit": "yes"}),
    ("deepseek", "quantization_config", {"quant_method": "fp8", "fmt": "e9m9"}),
    ("deepseek", "quantization_config", {"quant_method": "fp8", "weight_block_size": [0, 128]}),
    ("deepseek", "quantization_config", {"quant_method": "fp4", "fmt": "e4m3"}),  # e4m3 alone does not make fp8
]


@pytest.mark.parametrize(("base", "key", "value"), BAD_VALUES, ids=lambda v: repr(v)[:30])
def test_a_bad_value_is_refused_naming_the_file_and_the_field(tmp_path, capsys, base, key, value) -> None:
    path = write(tmp_path, with_value(base, key, value))
    code, out, err = add_model(capsys, path, "--out", str(tmp_path / "entry.yml"))
    field = key if not isinstance(value, dict) or key != "quantization_config" else "quantization_config."
    assert_refused(code, out, err, str(path), field)
    assert not (tmp_path / "entry.yml").exists()


@pytest.mark.parametrize("key", ["num_local_experts", "hidden_size", "num_experts_per_tok"])
def test_a_null_required_value_is_named(tmp_path, capsys, key) -> None:
    code, out, err = add_model(capsys, write(tmp_path, with_value("mixtral", key, None)))
    assert_refused(code, out, err, key, "lacks")


def test_intermediate_size_is_needed_only_where_a_layer_is_dense(tmp_path, capsys) -> None:
    cfg = with_value("qwen", "mlp_only_layers", [0])
    del cfg["intermediate_size"]
    assert_refused(*add_model(capsys, write(tmp_path, cfg)), "intermediate_size missing")
    del cfg["mlp_only_layers"]
    code, _, err = add_model(capsys, write(tmp_path, cfg))
    assert code == 0, err


def test_a_huge_value_makes_a_short_message(tmp_path, capsys) -> None:
    """A 10 MB string, a million-entry list and a 5,000-digit integer are shown cut short, never computed."""
    for value in ("x" * 10_000_000, list(range(1_000_000))):
        code, out, err = add_model(capsys, write(tmp_path, with_value("deepseek", "hidden_size", value)))
        assert_refused(code, out, err, "hidden_size = ")
    text = json.dumps(DEEPSEEK).replace('"hidden_size": 7168', '"hidden_size": ' + "9" * 5000)
    assert_refused(*add_model(capsys, write(tmp_path, text)), "hidden_size = <an integer of 5,000 digits>")
    # a huge integer in a field the reader does not use is data it ignores
    text = json.dumps(DEEPSEEK).replace('"moe_layer_freq": 1', '"moe_layer_freq": 1, "rope_theta": ' + "9" * 5000)
    code, out, err = add_model(capsys, write(tmp_path, text))
    assert code == 0, err


# the file itself: not JSON, not UTF-8, too big, too deep, not a file ------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo.json")
    return tmp_path / "fifo.json"


BAD_FILES = {
    "not JSON": (lambda p: write(p, "{'model_type': 'mixtral'}"), "not JSON"),
    "truncated": (lambda p: write(p, json.dumps(MIXTRAL)[:-20]), "not JSON"),
    "not UTF-8": (lambda p: write(p, json.dumps(MIXTRAL).encode("utf-16")), "not UTF-8"),
    "latin-1": (lambda p: write(p, json.dumps(MIXTRAL | {"_name_or_path": "é"}, ensure_ascii=False)
                                .encode("latin-1")), "not UTF-8"),
    "empty": (lambda p: write(p, b""), "not JSON"),
    "an array": (lambda p: write(p, "[1, 2]"), "not a JSON object"),
    "a number": (lambda p: write(p, "4096"), "not a JSON object"),
    "deep nesting": (lambda p: write(p, '{"a": ' * 200_000 + "1" + "}" * 200_000), "nested deeper"),
    "deep in a field": (lambda p: write(p, json.dumps(MIXTRAL)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000
                                        + "}"), "nested deeper"),
    "a key twice": (lambda p: write(p, json.dumps(MIXTRAL)[:-1] + ', "hidden_size": 8}'), "'hidden_size' appears twice"),
    "20 MB": (lambda p: write(p, b" " * (20 << 20)), "over 16,777,216 bytes"),
    "a folder": (lambda p: p, "is a folder"),
    "/dev/zero": (lambda p: Path("/dev/zero"), "character device"),
    "a FIFO": (_fifo, "FIFO"),
    "missing": (lambda p: p / "nope.json", "not found"),
    "unknown model": (lambda p: write(p, {"model_type": ["mixtral"], "architectures": [["x"], {"a": 1}, 3]}),
                      "not an MoE architecture"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_refused_in_one_line(tmp_path, capsys, case) -> None:
    make, says = BAD_FILES[case]
    path = make(tmp_path)
    assert_refused(*add_model(capsys, path), says)


# 2. quantised weights are sized by their quantization_config -----------------------------------------------------

QUANTISED = [
    (None, "bfloat16", 2, "torch_dtype bfloat16"),
    (None, "float32", 4, "torch_dtype float32"),
    ({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}, "bfloat16", 1, "'fp8'"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}, "float16", 0.5, "'gptq', 4-bit"),
    ({"quant_method": "gptq", "bits": 8, "group_size": -1}, "float16", 1, "'gptq', 8-bit"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "float16", 0.375, "'gptq', 3-bit"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}, "float16", 0.5, "'awq', 4-bit"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "bfloat16", 0.5,
     "'bitsandbytes', 4-bit"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True, "load_in_4bit": False}, "float16", 1,
     "'bitsandbytes', 8-bit"),
]  # fmt: skip


@pytest.mark.parametrize(("quant", "dtype", "size", "source"), QUANTISED, ids=lambda v: repr(v)[:24])
def test_quantised_weights_take_their_bits(tmp_path, capsys, quant, dtype, size, source) -> None:
    cfg = copy.deepcopy(MIXTRAL) | {"torch_dtype": dtype}
    if quant is not None:
        cfg["quantization_config"] = quant
    code, out, err = add_model(capsys, write(tmp_path, cfg))
    assert code == 0, err
    _, entry = one_entry(out)
    assert entry["bytes_per_param"] == size and type(entry["bytes_per_param"]) is type(size)
    assert source in entry["sources"]["bytes_per_param"]


def test_a_gptq_4bit_mixtral_by_hand(tmp_path, capsys) -> None:
    """TheBloke/Mixtral-8x7B-v0.1-GPTQ: 4-bit weights, torch_dtype float16 (the activations'). One expert of one
    layer is 3 x 4096 x 14336 = 176,160,768 weights; at 4 bits, 0.5 bytes each, its 32 layers hold
    176,160,768 x 0.5 x 32 = 2,818,572,288 bytes (not float16's 5,637,144,576)."""
    cfg = copy.deepcopy(MIXTRAL) | {"torch_dtype": "float16", "_name_or_path": "TheBloke/Mixtral-8x7B-v0.1-GPTQ"}
    cfg["quantization_config"] = {"bits": 4, "group_size": 128, "damp_percent": 0.1, "desc_act": True,
                                  "sym": True, "true_sequential": True, "quant_method": "gptq"}  # fmt: skip
    code, out, err = add_model(capsys, write(tmp_path, cfg))
    assert code == 0, err
    key, entry = one_entry(out)
    assert key == "mixtral_8x7b_v0_1_gptq" and entry["bytes_per_param"] == 0.5
    assert MoEModel.model_validate(entry).expert_bytes_all_layers == 2_818_572_288


def test_deepseek_v3_in_fp8_and_bf16(tmp_path, capsys) -> None:
    """DeepSeek-V3 as shipped (fp8: 1 byte) and without its quantization_config (torch_dtype bfloat16: 2)."""
    code, out, err = add_model(capsys, write(tmp_path, DEEPSEEK))
    assert code == 0, err
    entry = one_entry(out)[1]
    assert (entry["bytes_per_param"], entry["num_moe_layers"], entry["num_shared_experts"]) == (1, 58, 1)
    cfg = {k: v for k, v in DEEPSEEK.items() if k != "quantization_config"}
    code, out, err = add_model(capsys, write(tmp_path, cfg))
    assert code == 0 and one_entry(out)[1]["bytes_per_param"] == 2, err


# 3. the YAML written has one top-level key, whatever the names hold ------------------------------------------

HOSTILE_NAMES = [
    "evil\nhijack: 1", "x\r\ny: 2", "#: comment", "'single' \"double\"", "a: b", "- item", "key: [1, {2: 3}]",
    "\u2028z: 1", "\x85w: 1", "\u2029p: 1", "---\n...\n--- x", "&anchor *alias !!python/object", "\x00\x1b[31mred",
    "\ufeffbom", "\u202eevil", "{{ x }} $\\frac{1}{0}$ <script>", "null", "true", "   ", "naïve/模型",
]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_hostile_model_name_stays_data(tmp_path, capsys, name) -> None:
    """Made a display name (control and format characters written as their escapes, a formula's sign behind an
    apostrophe: hfconfig.display), quoted in the YAML (read back exactly), escaped in the header comment; the
    default key is a plain YAML string."""
    code, out, err = add_model(capsys, write(tmp_path, with_value("qwen", "_name_or_path", name)))
    assert code == 0, err
    key, entry = one_entry(out)
    shown = display(name) if name.strip() else "Qwen2Moe"
    assert entry["name"] == shown and entry["num_experts"] == 60
    assert MoEModel.model_validate(entry).name == shown
    assert isinstance(yaml.safe_load(key), str)


@pytest.mark.parametrize(
    ("name", "shown"),
    [("evil\nhijack: 1", "evil\\nhijack: 1"), ("\x85w", "\\x85w"), ("\u2028z", "\\u2028z"), ("=1+2", "'=1+2"),
     ("\U000e0001x", "\\U000e0001x"), ("naïve/模型", "naïve/模型")],
)  # fmt: skip
def test_a_name_becomes_a_display_name_by_hand(name, shown) -> None:
    assert display(name) == shown


def test_a_lone_surrogate_in_the_name_is_escaped_even_in_a_file(tmp_path, capsys) -> None:
    text = json.dumps(QWEN).replace('"Qwen/Qwen1.5-MoE-A2.7B"', '"a\\ud800b\\u2028c: d"')
    code, _, err = add_model(capsys, write(tmp_path, text), "--out", str(tmp_path / "entry.yml"))
    assert code == 0, err
    _, entry = one_entry((tmp_path / "entry.yml").read_text(encoding="utf-8"))
    assert entry["name"] == "a\\ud800b\\u2028c: d"


@pytest.mark.parametrize("file_name", ["we\nird: 'x' #y.json", "a: b.json", "#.json", "\u2028x: 1.json", "q\"u'o.json"],
                         ids=repr)  # fmt: skip
def test_a_hostile_file_name_stays_in_the_comment(tmp_path, capsys, file_name) -> None:
    code, out, err = add_model(capsys, write(tmp_path, MIXTRAL, name=file_name))
    assert code == 0, err
    assert one_entry(out)[0] == "mixtral_8x7b_v0_1"


BAD_KEYS = ["a\n", "a\nb: 1", "a: b", "#x", "x y", "-x", "_x", "", "é", "a.b", "k" * 100 + "\n"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
@pytest.mark.parametrize("command", ["add-model", "add-gpu"])
def test_a_name_that_is_no_catalog_key_is_refused(tmp_path, capsys, command, key) -> None:
    source = ["--from", str(write(tmp_path, MIXTRAL))] if command == "add-model" else []
    code = main(["catalog", command, *source, f"--name={key}", "--out", str(tmp_path / "entry.yml")])
    out, err = capsys.readouterr()
    assert_refused(code, out, err, "--name", "not a catalog key")
    assert not (tmp_path / "entry.yml").exists()


@pytest.mark.parametrize("command", ["add-model", "add-gpu"])
def test_a_catalog_key_is_taken(tmp_path, capsys, command) -> None:
    source = ["--from", str(write(tmp_path, MIXTRAL))] if command == "add-model" else []
    assert main(["catalog", command, *source, "--name", "My-gpu_2"]) == 0
    out = capsys.readouterr().out
    assert list(yaml.safe_load(out)) == ["My-gpu_2"]


def test_a_hostile_entry_joins_a_catalog_and_the_study_runs_with_it(tmp_path, capsys) -> None:
    """The entry of a name with a newline, quotes and a fake key, appended to a copy of catalog/models.yml:
    the catalog still loads (the name is data) and whatif evaluates the model."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "catalog", tmp_path / "catalog")
    name = "evil\nseed_128x2gb: {name: x}\n# 'q' \"d\" \u2028"
    code, out, err = add_model(capsys, write(tmp_path, with_value("mixtral", "_name_or_path", name)), "--name", "hm")
    assert code == 0, err
    with (tmp_path / "catalog" / "models.yml").open("a", encoding="utf-8") as f:
        f.write("\n" + out)
    catalog = yaml.safe_load((tmp_path / "catalog" / "models.yml").read_text(encoding="utf-8"))
    assert catalog["hm"]["name"] == display(name) and catalog["seed_128x2gb"]["name"] != "x"
    code = main(["whatif", "--config", str(tmp_path / "_config.yml"), "--system", "8xA100", "--model", "hm"])
    assert code == 0, capsys.readouterr().err


def test_a_path_with_a_newline_or_too_long_is_said_on_one_line(tmp_path, capsys) -> None:
    """The paths quoted by the file reader and the writer are escaped too (one line whatever the name)."""
    assert_refused(*add_model(capsys, tmp_path / "no\nsuch: 1.json"), "no\\nsuch: 1.json", "not found")
    config = write(tmp_path, MIXTRAL)
    assert_refused(*add_model(capsys, config, "--out", str(tmp_path / "no\ndir" / "x.yml")), "no\\ndir", "no such")
    assert_refused(*add_model(capsys, config, "--out", str(tmp_path / ("x" * 300))), "--out", "cannot be used")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
