"""study/strict.py: the rules the configuration's records follow, each on a small record written here."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from prophet_model.study.strict import Field, Record, ValidationError, field_validator, model_validator

ROOT = Path(__file__).resolve().parents[1]


class Split(Record):
    ep: int = Field(gt=0)
    dp: int = Field(gt=0, le=8)


class Box(Record):
    name: str
    share: float = Field(ge=0, lt=1)
    tp: Literal[1, 2, "auto"] = "auto"
    split: Split | Literal["auto", "none"] = "auto"
    limit: float | None = Field(default=None, gt=0)
    tags: list[Literal["a", "b"]] = Field(default=[])
    notes: dict[str, str] = Field(default={})
    parts: list[Split] = Field(default=[], min_length=0)
    flag: bool = False

    @field_validator("name")
    @classmethod
    def _short(cls, v: str) -> str:
        if len(v) > 3:
            raise ValueError("name is longer than 3 characters")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Box:
        if self.flag and self.limit is None:
            raise ValueError("flag needs a limit")
        return self


class Listing(Record):
    items: list[int] = Field(min_length=1)


def problems(cls: type, data: object) -> list[tuple]:
    with pytest.raises(ValidationError) as info:
        cls.model_validate(data)
    return [(e["type"], e["loc"], e["msg"]) for e in info.value.errors()]


def test_defaults_and_conversions() -> None:
    b = Box.model_validate({"name": "x", "share": 0})
    assert (b.tp, b.split, b.limit, b.tags, b.notes, b.flag) == ("auto", "auto", None, [], {}, False)
    assert type(b.share) is float and b.share == 0.0  # an int given for a float is a float
    assert b.model_fields_set == {"name", "share"}
    assert list(Box.model_fields)[:3] == ["name", "share", "tp"]  # declaration order


@pytest.mark.parametrize(
    "value, kind",
    [(True, "int_type"), (2.0, "int_type"), ("2", "int_type"), (None, "int_type"), (0, "greater_than"),
     (9, "less_than_equal")],
)  # fmt: skip
def test_whole_numbers_are_given_as_whole_numbers(value: object, kind: str) -> None:
    assert problems(Split, {"ep": 1, "dp": value})[0][:2] == (kind, ("dp",))


@pytest.mark.parametrize(
    "value, kind",
    [(True, "float_type"), ("0.5", "float_type"), (float("inf"), "finite_number"), (float("nan"), "finite_number"),
     (10**400, "float_type"), (-0.1, "greater_than_equal"), (1, "less_than")],
)  # fmt: skip
def test_numbers_are_finite_and_bounded(value: object, kind: str) -> None:
    assert problems(Box, {"name": "x", "share": value}) == [
        (kind, ("share",), {
            "float_type": "Input should be a valid number",
            "finite_number": "Input should be a finite number",
            "greater_than_equal": "Input should be greater than or equal to 0",
            "less_than": "Input should be less than 1",
        }[kind])
    ]  # fmt: skip


def test_a_literal_takes_its_values_with_their_types() -> None:
    assert Box.model_validate({"name": "x", "share": 0, "tp": 2}).tp == 2
    for value in (True, 2.0, "2", 3):
        assert problems(Box, {"name": "x", "share": 0, "tp": value}) == [
            ("literal_error", ("tp",), "Input should be 1, 2 or 'auto'")
        ]


def test_a_union_tries_each_member_and_reports_all() -> None:
    assert Box.model_validate({"name": "x", "share": 0, "split": {"ep": 2, "dp": 4}}).split == Split(ep=2, dp=4)
    assert Box.model_validate({"name": "x", "share": 0, "split": "none"}).split == "none"
    assert problems(Box, {"name": "x", "share": 0, "split": {"ep": 2}}) == [
        ("missing", ("split", "Split", "dp"), "Field required"),
        ("literal_error", ("split", "literal['auto','none']"), "Input should be 'auto' or 'none'"),
    ]
    assert problems(Box, {"name": "x", "share": 0, "limit": "1"}) == [  # X | None: no member tags
        ("float_type", ("limit",), "Input should be a valid number")
    ]


def test_containers_missing_and_unknown_keys() -> None:
    data = {"share": 0, "tags": ["a", "c"], "notes": {"k": 1, 2: "v"}, "parts": [{"ep": 1, "dp": 1, "x": 0}],
            "extra": 1, 3: 4}  # fmt: skip
    assert problems(Box, data) == [
        ("missing", ("name",), "Field required"),
        ("literal_error", ("tags", 1), "Input should be 'a' or 'b'"),
        ("string_type", ("notes", "k"), "Input should be a valid string"),
        ("string_type", ("notes", 2, "[key]"), "Input should be a valid string"),
        ("extra_forbidden", ("parts", 0, "x"), "Extra inputs are not permitted"),
        ("extra_forbidden", ("extra",), "Extra inputs are not permitted"),
        ("invalid_key", (3,), "Keys should be strings"),
    ]
    assert problems(Box, [1]) == [("model_type", (), "Input should be a valid dictionary or instance of Box")]
    assert problems(Box, {"name": "x", "share": 0, "tags": "a"})[0][0] == "list_type"
    assert problems(Box, {"name": "x", "share": 0, "notes": []})[0][0] == "dict_type"
    assert problems(Listing, {"items": []}) == [
        ("too_short", ("items",), "List should have at least 1 item after validation, not 0")
    ]


def test_validators_run_after_the_type_checks() -> None:
    assert problems(Box, {"name": "long", "share": 0}) == [
        ("value_error", ("name",), "Value error, name is longer than 3 characters")
    ]
    assert problems(Box, {"name": "x", "share": 0, "flag": True}) == [
        ("value_error", (), "Value error, flag needs a limit")
    ]
    # a field that is wrong keeps the record's check from running on a half-valid record
    assert [p[0] for p in problems(Box, {"name": "x", "share": 2, "flag": True})] == ["less_than"]


class Wider(Split):
    """A subclass keeps its parent's fields (bounds included) and checks, then adds its own."""

    tp: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> Wider:
        if self.tp > self.ep:
            raise ValueError("tp exceeds ep")
        return self


def test_a_subclass_keeps_its_parents_fields_and_bounds() -> None:
    assert list(Wider.model_fields) == ["ep", "dp", "tp"]
    assert Wider.model_validate({"ep": 2, "dp": 1}).tp == 1
    assert problems(Wider, {"ep": 0, "dp": 9}) == [
        ("greater_than", ("ep",), "Input should be greater than 0"),
        ("less_than_equal", ("dp",), "Input should be less than or equal to 8"),
    ]
    assert problems(Wider, {"ep": 1, "dp": 1, "tp": 2}) == [("value_error", (), "Value error, tp exceeds ep")]


def test_records_are_frozen_values() -> None:
    b = Box.model_validate({"name": "x", "share": 0.5, "split": {"ep": 2, "dp": 2}, "notes": {"k": "v"}})
    with pytest.raises(AttributeError):
        b.share = 0.1  # type: ignore[misc]
    assert b == Box(name="x", share=0.5, split={"ep": 2, "dp": 2}, notes={"k": "v"})
    assert b != Box(name="x", share=0.25) and hash(b) == hash(copy.deepcopy(b))
    assert pickle.loads(pickle.dumps(b)) == b and pickle.loads(pickle.dumps(b)).model_fields_set == b.model_fields_set
    assert b.model_dump(exclude={"notes", "tags", "parts"}) == {
        "name": "x", "share": 0.5, "tp": "auto", "split": {"ep": 2, "dp": 2}, "limit": None, "flag": False
    }  # fmt: skip
    assert dict(b)["split"] == Split(ep=2, dp=2)


def test_an_attention_shape_with_huge_head_counts_is_refused_at_once() -> None:
    """The allowed KV-head counts are the divisors of the query heads: listed in O(sqrt n), and not listed past
    a million (a config with 10**12 heads once spent minutes enumerating them)."""
    code = (
        "from pathlib import Path\n"
        "from prophet_model.study.catalog import MoEModel, _divisors\n"
        "from prophet_model.study.strict import ValidationError\n"
        "from prophet_model.study.yaml_io import read_yaml\n"
        "assert _divisors(12) == '1, 2, 3, 4, 6, 12' and _divisors(97) == '1, 97'\n"
        "entry = next(iter(read_yaml(Path('catalog/models.yml')).values()))\n"
        "try:\n"
        "    MoEModel.model_validate({**entry, 'num_attention_heads': 10**12, 'num_kv_heads': 7})\n"
        "except ValidationError as err:\n"
        "    assert 'allowed: a divisor of 1000000000000' in str(err), str(err)\n"
        "else:\n"
        "    raise AssertionError('accepted')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
