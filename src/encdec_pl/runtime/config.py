"""Config helpers shared by the entry points: resolvers, building objects with one-line errors, the config tree."""

from __future__ import annotations

import inspect
import itertools
import os
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import rich
import rich.syntax
import rich.tree
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from encdec_pl.errors import ConfigError, InvalidArgument, first_line, is_positive_int

CONFIG_PACKAGE = "pkg://encdec_pl.conf"  # found the same way from a checkout and from an installed wheel


def _abspath(path: str) -> str:
    """Absolute form of `path`, relative paths counted from where the command was started.

    Hydra records that folder as runtime.cwd; launcher workers (Ray, SLURM) may run
    elsewhere, so os.getcwd() is only the fallback outside a Hydra run.
    """
    base = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    return os.path.normpath(Path(base, Path(path).expanduser()).absolute())


CREATED_DIRS: list[Path] = []  # folders that _new_dir made in this process (run and sweep folders)


def _new_dir(path: str) -> str:
    """`path`, else `path_2`, `path_3`...: the first that does not exist yet, created at once.

    Run folders are named by the second a run starts; two runs started in the same second
    would otherwise share one. mkdir is atomic, so two processes never get the same folder.
    """
    base = Path(path)
    for number in itertools.count(1):
        candidate = base if number == 1 else base.with_name(f"{base.name}_{number}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        CREATED_DIRS.append(candidate)
        return str(candidate)
    raise AssertionError("unreachable")


def register_resolvers() -> None:
    """Register the configs' resolvers (${abspath:...}, ${new_dir:...}, ${precision_for:...},
    ${sweep_group:}, ${sweep_tags:...}, ${run_name:}); safe to call more than once."""
    from encdec_pl.runtime.callbacks.speed import precision_for  # imports Lightning: only when a config is composed
    from encdec_pl.runtime.sweep.labels import run_name, sweep_group, sweep_tags

    for name, resolver in (
        ("abspath", _abspath),
        ("precision_for", precision_for),
        ("sweep_group", sweep_group),
        ("sweep_tags", sweep_tags),
        ("run_name", run_name),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    if not OmegaConf.has_resolver("new_dir"):
        # Cached: a config resolves to the same folder every time, and Hydra copies the cache
        # into each job of a sweep, so every job finds the one sweep folder.
        OmegaConf.register_new_resolver("new_dir", _new_dir, use_cache=True)


def import_target(target: Any, key: str) -> Any:
    """The class or function a `_target_` names, or ConfigError naming `<key>._target_`."""
    if target is None:
        raise ConfigError(f"{key} has no _target_ (the class to build); it was deleted or never set")
    try:
        obj = get_object(str(target))
    except Exception as err:  # noqa: BLE001 - ImportError, ValueError...: all mean "no such thing to import"
        raise ConfigError(f"{key}._target_={target!r} is not a class that can be imported") from err
    if not callable(obj):  # e.g. a module
        raise ConfigError(f"{key}._target_={target!r} is not a class that can be imported")
    return obj


def check_settings(target: Any, names: Iterable[str], key_of: Callable[[str], str], hint: str = "") -> None:
    """ConfigError for the first of `names` that `target` does not take (a typo added with +key=...).

    `hint` ends the message: what to do when the key is fine but belongs to another object.
    """
    parameters = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [name for name in names if name not in parameters]
    if unknown:
        known = ", ".join(name for name in parameters if name != "self")
        raise ConfigError(f"{key_of(unknown[0])} is not a setting of {target.__name__}; its settings: {known}{hint}")


def instantiate_setting(conf: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate(conf), with a bad `_target_` or argument reported as one ConfigError naming `key`.

    E.g. `callbacks.reconstructions.num_images=0 is invalid: must be a positive integer`, or
    `trainer: Precision 'abc' is invalid. Allowed precision values: ...`.
    """
    if not OmegaConf.is_dict(conf):
        raise ConfigError(f"{key}={conf!r} is not a config to build (a mapping with a _target_)")
    target = import_target(conf.get("_target_"), key)
    check_settings(target, [k for k in conf if not str(k).startswith("_")], lambda name: f"{key}.{name}")
    try:
        return instantiate(conf, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, InvalidArgument):
            raise ConfigError(f"{key}.{cause.name}={cause.value!r} is invalid: must be {cause.requirement}") from err
        raise ConfigError(f"{key}: {first_line(cause or err)}") from err


def construct(cfg: DictConfig, *groups: str, declared: dict[str, Any] | None = None, **given: Any) -> Any:
    """Build the object that config group(s) describe: `_target_` called with every other key.

    EncDec takes its arguments from two groups (`model`, `loss`); a bad value, an unknown
    key (`+model.foo=1`) or a bad `_target_` is reported under the key the user typed.
    `given` are settings that come from the run rather than from the user, and replace the
    config's (the model's `data_spec`, declared by the data module). `declared`: a table's
    encoding (`model_inputs()` of the Adult data module); the model is then built in its
    tabular form (encdec_pl.models.tabular), with the `network` group's settings.
    """
    settings: dict[str, Any] = {}
    if declared:
        groups = (*groups, "network")
    for group in groups:
        settings.update(OmegaConf.to_container(cfg[group], resolve=True))  # type: ignore[arg-type]
    settings.update(given)
    cls = import_target(settings.pop("_target_", None), groups[0])
    if declared:
        from encdec_pl.models.tabular import tabular_variant

        try:
            cls = tabular_variant(cls)
        except ValueError as err:
            raise ConfigError(f"{groups[0]}._target_: {err}") from err
        settings.pop("data_spec", None)  # the tabular models build their networks from `table`
        settings.update(declared)
    # model=ae loss=ede: EDE's loss settings mean nothing to the autoencoder
    hint = " (each model selects its own loss group: leave loss= out, or pick the matching one, e.g. loss=ae)"
    check_settings(cls, settings, lambda name: config_key(cfg, name, groups), hint if len(groups) > 1 else "")
    try:
        return cls(**settings)
    except InvalidArgument as err:
        raise ConfigError(
            f"{config_key(cfg, err.name, groups)}={err.value!r} is invalid: must be {err.requirement}"
        ) from err


def config_key(cfg: DictConfig, name: str, groups: tuple[str, ...]) -> str:
    """The key a constructor argument is set by: latent_dim -> model.latent_dim."""
    return f"{next((g for g in groups if name in cfg[g]), groups[0])}.{name}"


def build_model(cfg: DictConfig, datamodule: Any) -> Any:
    """The model that the `model` and `loss` groups describe, with networks for what `datamodule` yields."""
    return construct(cfg, "model", "loss", data_spec=datamodule.data_spec.as_dict())


def build_callbacks(callbacks_cfg: DictConfig | None) -> list[L.Callback]:
    callbacks = []
    for name, conf in (callbacks_cfg or {}).items():
        if conf is not None:
            callback = instantiate_setting(conf, f"callbacks.{name}")
            if not isinstance(callback, L.Callback):
                raise ConfigError(f"callbacks.{name}: {type(callback).__name__} is not a Lightning callback")
            callbacks.append(callback)
    return callbacks


def build_trainer(cfg: DictConfig, callbacks: Sequence[L.Callback], **trainer_args: Any) -> L.Trainer:
    """The Trainer that `cfg.trainer` describes, with `callbacks` and then the speed callback (`cfg.speed`).

    `trainer_args` override the config's (the benchmark turns logging and checkpoints off).
    """
    speed = [construct(cfg, "speed")] if cfg.get("speed") else []
    return instantiate_setting(cfg.trainer, "trainer", callbacks=[*callbacks, *speed], **trainer_args)


# Trainer arguments that Lightning divides by without checking them: 0 crashes mid-run with a ZeroDivisionError.
POSITIVE_TRAINER_INTEGERS = ("log_every_n_steps", "accumulate_grad_batches", "check_val_every_n_epoch")


def check_run_settings(cfg: DictConfig) -> None:
    """Raise ConfigError for the Trainer settings Lightning does not check itself (a traceback later otherwise).

    Its integers it divides by, and its flags typed `bool` (a string there fails deep inside torch).
    (The seed, which Lightning truncates (2.5 -> 2) or rejects with a ValueError, is checked by cli.start_run.)
    """
    trainer_cfg = cfg.trainer
    for name in POSITIVE_TRAINER_INTEGERS:
        value = trainer_cfg.get(name)
        if value is not None and not is_positive_int(value):
            raise ConfigError(f"trainer.{name}={value!r} is invalid: must be a positive integer")
    for name, hint in typing.get_type_hints(L.Trainer.__init__).items():
        value = trainer_cfg.get(name)
        if hint in (bool, bool | None) and not isinstance(value, bool) and (value is not None or hint is bool):
            allowed = "true or false" if hint is bool else "true, false or null"
            raise ConfigError(f"trainer.{name}={value!r} is invalid: must be {allowed}")
        allowed = _numeric_type(hint)
        if allowed and name in trainer_cfg and not _has_type(value, hint):
            # Lightning would fail later with e.g. "'<' not supported between instances of 'str' and 'int'"
            raise ConfigError(f"trainer.{name}={value!r} is invalid: must be {allowed}")


def _numeric_type(hint: Any) -> str:
    """'an integer', 'a number' (or '... or null') for a Trainer argument typed int/float/None only, else ''."""
    args = set(typing.get_args(hint)) or {hint}
    if int not in args or not args <= {int, float, type(None)}:
        return ""
    kind = "a number (an integer or a fraction)" if float in args else "an integer"
    return f"{kind} or null" if type(None) in args else kind


def _has_type(value: Any, hint: Any) -> bool:
    args = set(typing.get_args(hint)) or {hint}
    if value is None:
        return type(None) in args
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (float in args and isinstance(value, float))


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
