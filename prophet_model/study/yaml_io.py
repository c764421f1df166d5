"""Reading the artifact's YAML and data files: YAML 1.2 numbers, no duplicate keys, no alias bombs, and
regular files only (no FIFO, device or dangling link), each refusal naming the file."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from prophet_model.errors import UserError

MAX_YAML_BYTES = 1 << 20  # a study or catalog is a few kB; refuse anything past 1 MiB
MAX_YAML_NODES = 100_000  # values after expanding anchors and aliases (a "billion laughs" document)
# YAML 1.2 core schema numbers, without the YAML 1.1 forms that read as surprising values: no
# sexagesimal (1:30 is not 90), no octal by a leading zero (010 is not 8), no '_' or 0b. A plain
# number with a leading zero (010) is left as text and refused by the schema, since YAML 1.1 readers
# take it as octal; 0o10 (octal) and 0x10 (hex) are YAML 1.2 numbers. A float needs a '.' or an exponent.
INT_12 = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT_12 = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
# What a YAML 1.1 reader takes as a number but YAML 1.2 reads as text (named in the schema's message).
YAML11_NUMBER = re.compile(
    r"^[-+]?(?:0b[01_]+|0[0-7_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[0-9._]*_[0-9._]*)$"
)
NUMBER_HINT = (
    "read as text: numbers follow YAML 1.2, where a leading 0 (010), '_' (1_000), ':' (1:30) or 0b is not "
    "part of a number; allowed: plain digits such as 10, 0o10 for octal, 0x10 for hex"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads numbers as YAML 1.2 does (1e9 is a number, not a
    string; 1:30 and 010 are not the YAML 1.1 numbers 90 and 8)."""


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key] + 1}); each key may appear once",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


MAX_INT_DIGITS = 400  # an integer past 10^400 is beyond every bound and float (Python refuses 4,300 digits)


def _bounded_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """An integer of at most MAX_INT_DIGITS characters (no conversion of a longer one is attempted)."""
    text = loader.construct_scalar(node)
    if len(text) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(text):,} digits; allowed: at most {MAX_INT_DIGITS} digits", node.start_mark
        )
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_Loader.add_constructor("tag:yaml.org,2002:int", _bounded_int)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_12, list("-+0123456789."))


if getattr(yaml, "CSafeLoader", None) is not None:  # libyaml's parser, the same constructors and resolvers

    class _CLoader(yaml.CSafeLoader):
        """_Loader's rules on libyaml's parser (several times faster). A document it refuses is parsed
        again by _Loader, so every error message is _Loader's."""

    _CLoader.yaml_constructors = _Loader.yaml_constructors
    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
else:  # pragma: no cover - PyYAML built without libyaml
    _CLoader = None


def _load(text: str) -> Any:
    """yaml.load with _Loader's rules: on libyaml when it is there and the text has only characters
    _Loader's reader accepts; any document libyaml refuses is parsed by _Loader (its message)."""
    if _CLoader is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        try:
            return yaml.load(text, Loader=_CLoader)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_Loader)


def _count_nodes(data: Any, limit: int) -> int:
    """Values in `data` with aliases expanded, stopping past `limit`."""
    n, todo = 0, [data]
    while todo and n <= limit:
        item = todo.pop()
        n += 1
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return n


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with the artifact's rules; UserError naming `where` on any problem."""
    try:
        data = _load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{where}: YAML error{at}: {problem}") from None
    except RecursionError:
        raise UserError(f"{where}: YAML nested too deeply; allowed: a plain configuration") from None
    if _count_nodes(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise UserError(
            f"{where}: expands to more than {MAX_YAML_NODES:,} values (anchors and aliases included); "
            "allowed: a configuration of ordinary size"
        )
    return data


_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _open_regular(path: Path, kind: str) -> int:
    """A read-only descriptor of the regular file at `path`; UserError with the true reason otherwise (a
    missing file, a dangling or looping symbolic link, a folder, a FIFO, device or socket). Opened without
    blocking, and a FIFO or device is refused by its type before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise UserError(
                f"{path}: a symbolic link to a missing file ({os.readlink(path)}); allowed: {kind}"
            ) from None
        raise UserError(f"{path}: file not found; allowed: {kind}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; allowed: {kind}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: a loop of symbolic links; allowed: {kind}") from None
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); allowed: {kind}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UserError(f"{path}: is a folder; allowed: {kind}")
        if not stat.S_ISREG(mode):
            what = _FILE_TYPES.get(stat.S_IFMT(mode), "not a plain file")
            raise UserError(f"{path}: not a regular file but {what}; allowed: {kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular_present(path: Path, kind: str) -> bool:
    """Whether an optional file is there: False when nothing is at `path`, True for a regular file, and a
    UserError naming it for anything else there (a folder, a FIFO or device, a dangling symbolic link), so
    that a file in the wrong form is never silently taken as absent."""
    if not os.path.lexists(path):
        return False
    os.close(_open_regular(path, kind))
    return True


def read_regular(path: Path, max_bytes: int, kind: str) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; UserError with the true reason otherwise (a
    missing file, a dangling or looping symbolic link, a folder, a FIFO or device, a file too large).
    A FIFO or device is refused by its type before anything is read, so reading never blocks."""
    fd = _open_regular(path, kind)
    try:
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UserError(f"{path}: over {max_bytes:,} bytes; allowed: {kind} under {max_bytes:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); allowed: {kind}") from None
    finally:
        os.close(fd)


def read_text(path: Path, max_bytes: int, kind: str) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` (read_regular's checks; a UTF-8 byte-order
    mark is dropped); UserError naming the file for bytes that are not UTF-8."""
    try:
        return read_regular(path, max_bytes, kind).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file (byte {exc.start + 1}); allowed: {kind}") from None


def read_yaml(path: Path) -> Any:
    """Read a YAML file; UserError naming the file for a missing file, a folder, a special file, unreadable
    bytes, a file over 1 MiB, invalid YAML, duplicate keys or an alias bomb."""
    return yaml_from_bytes(read_regular(path, MAX_YAML_BYTES, "a YAML file"), path)


def yaml_from_bytes(data: bytes, path: Path) -> Any:
    """The YAML document of a file's bytes (read_yaml's rules and messages)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    return parse_yaml(text, str(path))
