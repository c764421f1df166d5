"""`python -m prophet_model catalog add-model --from config.json` (a catalog/models.yml entry read from a
HuggingFace config, every value sourced) and `catalog add-gpu` (a catalog/gpus.yml template: every field,
its unit and what it means). Both print YAML, or write it to a new --out file (never over an existing one)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from prophet_model.errors import UserError

NAME = "catalog"


def register(commands: argparse._SubParsersAction) -> None:
    ca = commands.add_parser("catalog", help="write catalog entries: a model from its config.json, a GPU template")
    cs = ca.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    am = cs.add_parser("add-model", help="a catalog/models.yml entry from a HuggingFace config.json")
    am.add_argument("--from", dest="source", required=True, metavar="CONFIG_JSON", help="the model's config.json")
    am.add_argument("--name", help="the entry's key (default: from the file's folder or model type)")
    am.add_argument("--out", help="write the YAML here (default: standard output); never over an existing file")
    ag = cs.add_parser("add-gpu", help="a catalog/gpus.yml entry template: every field, its unit and meaning")
    ag.add_argument("--name", default="my_gpu", help="the entry's key (default: my_gpu)")
    ag.add_argument("--out", help="write the YAML here (default: standard output); never over an existing file")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    return run_catalog(args)


GPU_FIELDS = {  # field -> (placeholder, unit and meaning)
    "name": ('"My GPU 80GB"', "display name, as tables and figures print it"),
    "generation": (
        "hopper",
        "architecture: ampere, ada, hopper or blackwell. Picks the measured attainable "
        "rates (validation/measurements) a GPU never measured borrows, and the interconnects it fits",
    ),
    "memory_capacity_gb": ("80", "GPU memory, GB = 1e9 bytes (datasheet)"),
    "memory_bandwidth_gbps": (
        "3350",
        "HBM/GDDR bandwidth, GB/s (datasheet peak; the model applies the measured share)",
    ),
    "bf16_dense_tflops": (
        "989",
        "dense BF16 tensor-core rate, TFLOP/s, without sparsity (datasheets often print twice this 'with sparsity')",
    ),
    "fp8_dense_tflops": (
        "1979",
        "dense FP8 tensor-core rate, TFLOP/s, without sparsity (Ada, Hopper, Blackwell); delete the line for a GPU "
        "without FP8 tensor cores (Ampere: FP8 weights are dequantised to BF16)",
    ),
    "host_link_bandwidth_gbps": ("64", "host link per direction, GB/s: PCIe 4.0 x16 ~32, PCIe 5.0 x16 ~64 (line rate)"),
    "host_link": ("pcie", "the host link's kind: pcie, or nvlink_c2c (then host_link_attainable_share is needed)"),
    "host_link_attainable_share": ("null", "nvlink_c2c only: the share of its line rate a published copy attains"),
    "price_usd_per_gpu_hour": ("2.99", "what one GPU-hour costs you, USD (an assumption: your cloud's list price)"),
}


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
    lines += [
        f'    {field}: ""  # where {field} comes from (a datasheet, a measurement, your assumption)'
        for field in GPU_FIELDS
        if field != "name"
    ]
    return "\n".join(lines) + "\n"


def catalog_key(key: str, where: str = "--name") -> str:
    """`key` when it is a catalog key (SAFE_ID, the whole text: no trailing newline); else a UserError."""
    from prophet_model.study.hfconfig import show
    from prophet_model.study.schema import SAFE_ID

    if not SAFE_ID.fullmatch(key):
        raise UserError(
            f"{where} {show(key)}: not a catalog key; allowed: letters, digits, '-' and '_', starting "
            "with a letter or digit"
        )
    return key


def model_yaml(path: Path, key: str | None) -> str:
    """The YAML of a catalog/models.yml entry read from a config.json: one top-level key, whatever the file
    holds (its name and _name_or_path are data: quoted in the YAML, escaped in the header comment)."""
    import yaml

    from prophet_model.study.hfconfig import default_key, printable
    from prophet_model.study.questions.model_file import model_entry

    if key is not None:
        catalog_key(key)
    entry, name = model_entry(path)
    key = catalog_key(key or default_key(name))
    head = (
        f"# {printable(name)}: read from {printable(path.name)} by `python -m prophet_model catalog add-model`; "
        "append it to\n# catalog/models.yml (or a catalog of your own) and name it in the config's `model:`.\n"
    )
    doc = {key: entry}
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    if yaml.safe_load(text) != doc:  # PyYAML folds a raw U+0085 in a quoted name into a space: escape all
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=1000)
    return head + text


def run_catalog(args: argparse.Namespace) -> int:
    """`catalog add-model` or `catalog add-gpu`; a refusal is one line, whatever path or value it quotes."""
    from prophet_model.study.hfconfig import printable

    try:
        return _run_catalog(args)
    except UserError as exc:  # a newline in a file name (said by read_regular or write_new) stays escaped
        raise UserError(printable(str(exc), 4000)) from None


def _run_catalog(args: argparse.Namespace) -> int:
    from prophet_model.commands.shared import write_new
    from prophet_model.study.hfconfig import printable

    if args.catalog_command == "add-model":
        text = model_yaml(Path(args.source), args.name)
    else:
        text = gpu_template(catalog_key(args.name))
    if args.out:
        out = Path(args.out)
        try:
            taken = out.exists() or out.is_symlink()
        except OSError as exc:  # a name too long, a folder that cannot be searched
            raise UserError(
                f"--out {out}: cannot be used ({exc.strerror or exc}); allowed: a new file in a folder you can write to"
            ) from None
        if taken:
            raise UserError(
                f"--out {out}: exists (never replaced); allowed: a new file, or print the entry (no "
                f"--out) and append it yourself: ... >> {out}"
            )
        write_new(out, text, force=False)
        print(f"wrote {printable(args.out)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
