"""Model vs measured: the committed GPU measurements (validation/measurements/) predicted by the model.

One module per job (each imports only the ones listed before it, and nothing downstream of the study):
- measurements: the measurements as read for the validation (rows, machines' hardware and ceilings);
- nccl_log: how NCCL drives the link (other NCCL settings, the split all-to-all, the probe, its INFO log);
- summary: the error summaries and verdicts, the calibrated variant, the all-to-all's regimes and rates;
- predict: every point predicted by the model and at datasheet values, what-ifs, larger machines;
- predict_steps: whole decode steps and expert-offloading steps, measured beside predicted;
- evidence: the validated errors each claim rests on.
"""
