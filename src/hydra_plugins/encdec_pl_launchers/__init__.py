"""encdec-pl's Hydra launchers (conf/hydra/launcher/): Hydra loads launchers only from the
`hydra_plugins` namespace package, so they live here rather than in encdec_pl.runtime.sweep."""
