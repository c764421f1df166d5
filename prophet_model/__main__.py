"""`python -m prophet_model`: the command line (cli.main), started so that Ctrl-C at any moment exits 130
with one line and no traceback: until main's own handler takes over (it raises KeyboardInterrupt where
results can be cleaned up), and again after it returns, SIGINT ends the process at once - nothing has been
written then, or everything has."""

import signal

_EARLY = b"error: interrupted (SIGINT) before the command started; nothing was done\n"
_LATE = b"error: interrupted (SIGINT) after the command finished\n"


def _interrupted(message: bytes):
    """A SIGINT handler that says `message` on stderr and exits 130 (128 + SIGINT) without unwinding."""

    def handler(signum, frame) -> None:
        import os

        try:
            os.write(2, message)
        finally:
            os._exit(130)

    return handler


signal.signal(signal.SIGINT, _interrupted(_EARLY))  # the first statement: before any import of the package's

import os  # noqa: E402
import sys  # noqa: E402

# The model does no large linear algebra (a least-squares fit of a few points is the most), so OpenBLAS's
# thread pool, started when numpy is imported, only costs start-up: about 0.03 s of a 0.4 s whatif on two
# cores. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from prophet_model.cli import main  # noqa: E402  (after the variable: numpy reads it when first imported)
from prophet_model.workflow.procs import die_with_parent, terminate_as_interrupt  # noqa: E402

terminate_as_interrupt()  # SIGTERM and SIGHUP clean up as Ctrl-C does
die_with_parent()  # a killed make (or shell) takes this command with it
code = main(interrupt_handler=_interrupted(_LATE))
sys.exit(code)
