"""Runtime: assembling a run from its config (building objects, resuming, callbacks, loggers, sweeps).

The only layer below the entry points that imports Hydra or OmegaConf.
"""
