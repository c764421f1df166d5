"""The command line's standard streams: ASCII look-alikes on a console that cannot encode the artifact's
characters, standard output's write errors told from a results file's, a reader that went away, and the
one line an error of the environment gets."""

from __future__ import annotations

import re
import sys

# what a console that cannot encode a character prints instead (a C locale, PYTHONIOENCODING=ascii)
ASCII_FALLBACKS = {
    "×": "x",
    "–": "-",
    "—": "-",
    "−": "-",
    "→": "->",
    "←": "<-",
    "↔": "<->",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "≈": "~",
    "±": "+/-",
    "…": "...",
    "µ": "u",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "·": ".",
    "•": "*",
    "°": " deg",
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "✓": "ok",
    "✗": "x",
}
FALLBACK_ERRORS = "prophet-ascii"  # the codecs error handler that writes them (registered by encoding_safe)


def ascii_fallback(exc: UnicodeError) -> tuple[str, int]:
    """codecs error handler: each character the stream cannot encode as its ASCII look-alike (ASCII_FALLBACKS),
    else its decomposition's ASCII letters (é -> e), else an escape (\\u2211)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    import unicodedata

    out = []
    for ch in exc.object[exc.start : exc.end]:
        plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
        out.append(ASCII_FALLBACKS.get(ch) or plain or ch.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(out), exc.end


def tag_stdout() -> None:
    """The process's own standard output (not a test's capture) rewrapped so that a failed write says it is
    standard output's (OSError.stdout = True): main tells it from a results file that cannot be written."""
    import io

    out = sys.stdout
    if out is None or out is not sys.__stdout__ or not isinstance(out, io.TextIOWrapper):
        return

    class StdoutRaw(io.FileIO):
        def write(self, b) -> int | None:  # type: ignore[override]
            try:
                return super().write(b)
            except OSError as exc:
                exc.stdout = True  # type: ignore[attr-defined]
                raise

    try:
        out.flush()
        raw = StdoutRaw(out.fileno(), "w", closefd=False)
    except (OSError, ValueError):
        return
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, line_buffering=out.line_buffering
    )


def encoding_safe() -> None:
    """Console streams that cannot encode the artifact's characters (× – → ≤; a C locale, PYTHONIOENCODING=ascii)
    write ASCII look-alikes instead (8x1, 1.25x, $0.69 -> $0.69) rather than failing after the results are
    written; a strict UTF-8 stream escapes what it cannot encode (a lone surrogate)."""
    import codecs

    try:
        codecs.lookup_error(FALLBACK_ERRORS)
    except LookupError:
        codecs.register_error(FALLBACK_ERRORS, ascii_fallback)
    tag_stdout()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            "".join(ASCII_FALLBACKS).encode(stream.encoding or "ascii")
            lacking = False
        except (UnicodeError, LookupError):
            lacking = True
        errors = FALLBACK_ERRORS if lacking else "backslashreplace"
        if lacking or getattr(stream, "errors", "strict") == "strict":
            try:
                reconfigure(errors=errors)
            except (ValueError, OSError):  # a stream that cannot be reconfigured keeps its settings
                pass


def pipe_closed() -> int:
    """The reader of standard output went away (`analyze | head`): stop quietly, as `cat` does. Later
    writes (and the interpreter's final flush) go to /dev/null; 141 = 128 + SIGPIPE."""
    _discard_stdout()
    return 141


def _discard_stdout() -> None:
    """Send later writes to standard output (and the interpreter's final flush) to /dev/null."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def environment_error(exc: OSError) -> str:
    """One line for an OSError of the environment: the path, what the system said, what would do."""
    import errno

    allowed = {
        errno.ENOSPC: "free space on that disk",
        errno.EDQUOT: "free space in your quota",
        errno.EACCES: "a path you may use (permissions)",
        errno.EPERM: "a path you may use (permissions)",
        errno.EROFS: "a writable file system",
        errno.EMFILE: "fewer open files (ulimit -n)",
        errno.ENOMEM: "more free memory",
    }.get(exc.errno or 0, "a path and system that allow it")
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; allowed: {allowed}"


def stdout_failed(exc: OSError) -> int:
    """Standard output cannot be written (a full disk, /dev/full, a closed terminal): one line, exit 1 (the
    environment), later writes discarded so that the interpreter's last flush does not fail again."""
    print(
        f"error: standard output: {exc.strerror or exc}; allowed: a writable output (free space, an open "
        "terminal or file)",
        file=sys.stderr,
    )
    _discard_stdout()
    return 1


LONG_WORD = 200  # characters: a longer run of non-blank text in a message is shortened (a pasted value, a path)


def short_words(message: str) -> str:
    """`message` with every run of more than LONG_WORD non-blank characters cut to its first 80 and a count,
    so that a 5,000-character value echoed in an error makes one readable line, its "allowed:" part kept."""
    return re.sub(rf"\S{{{LONG_WORD + 1},}}", lambda m: f"{m.group()[:80]}… ({len(m.group()):,} characters)", message)
