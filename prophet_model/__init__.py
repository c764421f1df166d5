"""prophet_model: an analytical model of MoE decode throughput with and without Prophet.

Data flows one way: config (validated study) -> model (numpy time terms) -> results (tidy
DataFrames) -> writers (CSV now; figures, summaries and LaTeX downstream).
"""

__version__ = "0.1.0"

import sys as _sys

if _sys.argv[:1] == ["-m"]:  # `python -m prophet_model`, while runpy imports the package: Ctrl-C from here on
    import os as _os  # exits 130 with one line (__main__.py then installs its own handler first thing)
    import signal as _signal

    def _interrupted_early(signum: int, frame: object) -> None:
        try:
            _os.write(2, b"error: interrupted (SIGINT) before the command started; nothing was done\n")
        finally:
            _os._exit(130)

    _signal.signal(_signal.SIGINT, _interrupted_early)
