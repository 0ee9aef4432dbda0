"""encdec-pl's Hydra config tree.

It is a Python package only so that an installed wheel can find it
(`hydra.main(config_path="pkg://encdec_pl.conf")`); pyproject.toml maps this
folder to `encdec_pl.conf`. Nothing here is code.
"""
