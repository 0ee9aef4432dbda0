"""What a sweep job returns to Hydra's sweeper: the value of the metric being optimised."""

from __future__ import annotations

from encdec_pl.errors import ConfigError


def optimized_metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """metrics[name] for a hyperparameter search (Optuna minimises or maximises it); None when no
    metric is chosen (`optimized_metric: null`, grid sweeps and single runs)."""
    if name is None:
        return None
    if name not in metrics:
        logged = ", ".join(sorted(metrics)) or "nothing"
        raise ConfigError(f"optimized_metric={name!r} was not logged by this run (it logged: {logged})")
    return metrics[name]
