"""Model vs measured: the committed GPU measurements (validation/measurements/) predicted by the model.

- predict: loading the measurements, predicting them, and the summaries, NCCL logs and tables the
  validation page shows;
- evidence: the validated errors each claim rests on.
"""
