import sys

from .cli import main
from .procs import die_with_parent, terminate_as_interrupt

terminate_as_interrupt()  # SIGTERM and SIGHUP clean up as Ctrl-C does
die_with_parent()  # a killed make (or shell) takes this command with it
sys.exit(main())
