"""Config helpers shared by the entry points: custom resolvers and the printed config tree."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import rich
import rich.syntax
import rich.tree
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

CONFIG_PACKAGE = "pkg://encdec_pl.conf"  # found the same way from a checkout and from an installed wheel

# conf/hydra/launcher/ray.yaml keeps the Ray plugin's option name, so Hydra checks it against the
# plugin's schema of that name (wanted: typos fail) and warns that such matching is deprecated.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")


def _abspath(path: str) -> str:
    """Absolute form of `path`, relative paths counted from where the command was started.

    Hydra records that folder as runtime.cwd; launcher workers (Ray, SLURM) may run
    elsewhere, so os.getcwd() is only the fallback outside a Hydra run.
    """
    base = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    return os.path.normpath(Path(base, Path(path).expanduser()).absolute())


def register_resolvers() -> None:
    """Make ${abspath:...}, ${sweep_group:} and ${sweep_tags:...} available to configs; safe to call more than once."""
    from encdec_pl.sweep.labels import sweep_group, sweep_tags

    for name, resolver in (("abspath", _abspath), ("sweep_group", sweep_group), ("sweep_tags", sweep_tags)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def register_launchers() -> None:
    """Make the sweep launchers (conf/hydra/launcher) known to Hydra; safe to call more than once.

    Hydra finds launchers by listing the `hydra_plugins` namespace package. That works for an
    installed wheel but not for an editable install (`make install`), whose import hook cannot be
    listed, so they are registered by hand as well.
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.encdec_pl_launchers.launchers import RayLauncher, SlurmLauncher

    for launcher in (RayLauncher, SlurmLauncher):
        Plugins.instance().register(launcher)


MAIN_GROUPS = ("data", "model", "loss", "trainer", "callbacks", "logger")


def config_tree(cfg: DictConfig, order: Sequence[str] = MAIN_GROUPS) -> rich.tree.Tree:
    """The resolved config as a Rich tree, main groups first."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the config tree and, when `save_to` is given, keep a plain-text copy there."""
    tree = config_tree(cfg)
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as f:
            rich.print(tree, file=f)
