"""Sweeps: Hydra launchers that place each job on one device, W&B labels for a sweep's jobs,
failure records, and reading a finished sweep folder back for `python -m encdec_pl.report`.

The launchers are Hydra config choices (conf/hydra/launcher/): `local` (the default of -m),
`ray` and `slurm`; `hparams_search=ede_optuna` runs an Optuna search on the same launchers.
"""
