import os
import sys

# The model does no large linear algebra (a least-squares fit of a few points is the most), so OpenBLAS's
# thread pool, started when numpy is imported, only costs start-up: about 0.03 s of a 0.4 s whatif on two
# cores. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from prophet_model.cli import main  # after the variable: numpy reads it when first imported
from prophet_model.workflow.procs import die_with_parent, terminate_as_interrupt

terminate_as_interrupt()  # SIGTERM and SIGHUP clean up as Ctrl-C does
die_with_parent()  # a killed make (or shell) takes this command with it
sys.exit(main())
