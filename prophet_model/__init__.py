"""prophet_model: an analytical model of MoE decode throughput with and without Prophet.

Data flows one way: config (validated study) -> model (numpy time terms) -> results (tidy
DataFrames) -> writers (CSV now; figures, summaries and LaTeX downstream).
"""

__version__ = "0.1.0"
