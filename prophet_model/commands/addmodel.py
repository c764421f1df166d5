"""`python -m prophet_model catalog add-model --from config.json` (a catalog/models.yml entry read from a
HuggingFace config, every value sourced) and `catalog add-gpu` (a catalog/gpus.yml template: every field,
its unit and what it means). Both print YAML, or write it to a new --out file (never over an existing one)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prophet_model.errors import UserError

GPU_FIELDS = {  # field -> (placeholder, unit and meaning)
    "name": ('"My GPU 80GB"', "display name, as tables and figures print it"),
    "generation": ("hopper", "architecture: ampere, ada, hopper or blackwell. Picks the measured attainable "
                   "rates (validation/measurements) a GPU never measured borrows, and the interconnects it fits"),
    "memory_capacity_gb": ("80", "GPU memory, GB = 1e9 bytes (datasheet)"),
    "memory_bandwidth_gbps": ("3350", "HBM/GDDR bandwidth, GB/s (datasheet peak; the model applies the measured share)"),
    "bf16_dense_tflops": ("989", "dense BF16 tensor-core rate, TFLOP/s, without sparsity (datasheets often print "
                          "twice this 'with sparsity')"),
    "host_link_bandwidth_gbps": ("64", "host link per direction, GB/s: PCIe 4.0 x16 ~32, PCIe 5.0 x16 ~64 (line rate)"),
    "price_usd_per_gpu_hour": ("2.99", "what one GPU-hour costs you, USD (an assumption: your cloud's list price)"),
}  # fmt: skip


def gpu_template(key: str) -> str:
    lines = [
        "# A catalog/gpus.yml entry (the values are an example: H100 SXM5's): replace every value and say where",
        "# each came from under sources.",
        "# Units are in the names: GB = 1e9 bytes, GB/s = 1e9 bytes/s, TFLOP/s = 1e12 FLOP/s.",
        f"{key}:",
    ]
    for field, (value, meaning) in GPU_FIELDS.items():
        lines += [f"  # {meaning}", f"  {field}: {value}"]
    lines.append("  sources:  # every value needs one: the catalog refuses an entry with an empty source")
    lines += [f'    {field}: ""  # where {field} comes from (a datasheet, a measurement, your assumption)'
              for field in GPU_FIELDS if field != "name"]  # fmt: skip
    return "\n".join(lines) + "\n"


def model_yaml(path: Path, key: str | None) -> str:
    import yaml

    from prophet_model.study.catalog import MoEModel
    from prophet_model.study.hfconfig import default_key, entry_from_config
    from prophet_model.study.yaml_io import read_regular

    data = read_regular(path, 16 << 20, "a HuggingFace config.json")
    try:
        cfg = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not JSON ({exc}); allowed: a HuggingFace config.json") from None
    entry, name = entry_from_config(cfg, str(path))
    key = key or default_key(name)
    from prophet_model.study.schema import SAFE_ID

    if not SAFE_ID.match(key):
        raise UserError(f"--name {key!r}: allowed: letters, digits, '-' and '_' (a catalog key)")
    from prophet_model.study.strict import ValidationError

    try:
        MoEModel.model_validate(entry)
    except ValidationError as err:  # the config's values contradict each other (e.g. heads vs KV heads)
        from prophet_model.study.config import _format_validation_error

        raise UserError(_format_validation_error(err, f"{path}: the entry read from it")) from None
    head = (f"# {name}: read from {path.name} by `python -m prophet_model catalog add-model`; append it to\n"
            "# catalog/models.yml (or a catalog of your own) and name it in the config's `model:`.\n")  # fmt: skip
    return head + yaml.safe_dump({key: entry}, sort_keys=False, allow_unicode=True, width=1000)


def run_catalog(args: argparse.Namespace) -> int:
    from prophet_model.commands.scripting import write_new

    if args.catalog_command == "add-model":
        text = model_yaml(Path(args.source), args.name)
    else:
        text = gpu_template(args.name)
    if args.out:
        out = Path(args.out)
        if out.exists() or out.is_symlink():
            raise UserError(f"--out {out}: exists (never replaced); allowed: a new file, or print the entry (no "
                            f"--out) and append it yourself: ... >> {out}")  # fmt: skip
        write_new(out, text, force=False)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
