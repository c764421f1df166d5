"""The questions the command line asks of the study: what if (`overrides`: --set and the changed study),
sweep (`grid`: the varied keys and their values; `sweep`: the metrics over a grid) and solve; `moves`: what moves a
speedup and what does not, with why."""
