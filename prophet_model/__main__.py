import sys

from prophet_model.cli import main
from prophet_model.workflow.procs import die_with_parent, terminate_as_interrupt

terminate_as_interrupt()  # SIGTERM and SIGHUP clean up as Ctrl-C does
die_with_parent()  # a killed make (or shell) takes this command with it
sys.exit(main())
