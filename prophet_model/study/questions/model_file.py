"""A model given by its HuggingFace config.json (`catalog add-model --from`, and `whatif`, `sweep`, `solve
--model-file`): the catalog entry study/hfconfig.py reads from it, validated as a catalog MoEModel. A question
holds it in memory beside the catalog's models (study_from_raw's `extra_models`); nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prophet_model.errors import UserError
from prophet_model.study.catalog import MoEModel

MAX_CONFIG_BYTES = 16 << 20  # a published config.json is a few kB; far more is not one
KIND = "a HuggingFace config.json"


def model_entry(path: Path, option: str = "") -> tuple[dict, str]:
    """(the catalog entry, its display name) read from the config.json at `path`, checked as catalog/models.yml
    checks an entry; a UserError `[<option>] <path>: <what>; allowed: ...` otherwise (the file's name and values
    are data, escaped wherever they are shown)."""
    from prophet_model.study.hfconfig import entry_from_config, parse_config, printable
    from prophet_model.study.strict import ValidationError
    from prophet_model.study.yaml_io import read_regular

    where = f"{option} {printable(str(path), 500)}".lstrip()
    try:
        data = read_regular(path, MAX_CONFIG_BYTES, KIND)
    except UserError as exc:  # a missing file, a folder, a FIFO: one line, with the option that names it
        raise UserError(printable(f"{option} {exc}".lstrip(), 4000)) from None
    entry, name = entry_from_config(parse_config(data, where), where)
    try:
        MoEModel.model_validate(entry)
    except ValidationError as err:  # the config's values contradict each other
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the entry'}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        )
        raise UserError(f"{where}: the entry read from it is inconsistent: {printable(problems, 2000)}") from None
    return entry, name


@dataclass(frozen=True)
class ModelFile:
    """A --model-file's model: its key in the question's study (the catalog's keys left as they are), its
    display name (escaped: hfjson.display) and the model."""

    key: str
    name: str
    model: MoEModel


def read_model_file(path: Path, catalog: set[str] | frozenset[str] = frozenset()) -> ModelFile:
    """The model of `--model-file PATH`, keyed as `catalog add-model` would name it (hfconfig.default_key),
    with `_file` added where that key is one of the `catalog`'s (the file never replaces a catalog model)."""
    from prophet_model.study.hfconfig import default_key

    entry, name = model_entry(path, "--model-file")
    key = default_key(name)
    while key in catalog:
        key += "_file"
    return ModelFile(key, name, MoEModel.model_validate(entry))
