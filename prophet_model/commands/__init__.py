"""The commands `cli.py` dispatches to beyond the build: what-ifs, sweeps, comparisons and analysis."""
