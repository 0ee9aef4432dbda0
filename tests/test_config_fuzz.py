"""Property: any command-line override either trains or stops with one clear line, never a traceback.

Hypothesis draws one to three overrides (existing keys of every group with values of every type
and range, unknown and added keys, deletions, group options real and made up, interpolations and
text the override grammar may reject). Each example goes through Hydra's composition and the real
`train(cfg)` in this process, which is what the CLI runs (a subprocess per example would cost ten
times as much): it must either finish a training step with its validation, or raise an error for
which the CLI prints one `error: ...` line. A few representative cases then go through the real
CLI. Bounded and derandomized, so CI always runs the same examples; the regression tests below pin
every crash the fuzzer found.
"""

from __future__ import annotations

import json
import string
import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from encdec_pl.runtime.cli import user_error_message
from encdec_pl.train import train

from .conftest import REPO_ROOT, compose_config, run_cli

pytestmark = pytest.mark.slow

# Every example trains one step and validates on one batch, on CPU, without W&B or workers.
FIXED = [
    "logger=csv",
    "trainer.accelerator=cpu",
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "data.batch_size=16",
    "data.num_workers=0",
    "data.download=false",
    "extras.print_config=false",
]
# Left alone: what sets the run's length (fixed above), what launches processes (devices,
# strategy: DDP would re-run pytest), and paths (a random relative path would write into the checkout).
NOT_FUZZED = {
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.min_steps",
    "trainer.min_epochs",
    "trainer.max_time",
    "trainer.fast_dev_run",
    "trainer.val_check_interval",
    "trainer.num_sanity_val_steps",
    "trainer.limit_train_batches",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.limit_predict_batches",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "data.num_workers",
}
GROUPS = ("model", "loss", "data", "trainer", "callbacks", "logger", "extras")
GROUP_OPTIONS = {
    group: sorted(p.stem for p in (REPO_ROOT / "conf" / group).glob("*.yaml"))
    for group in ("model", "loss", "data", "callbacks", "logger", "debug", "experiment")
}
GROUP_OPTIONS["trainer"] = ["cpu", "default"]  # gpu fails as expected; ddp would launch processes


@cache
def fuzzable_keys() -> tuple[str, ...]:
    cfg = compose_config("train", [], Path(tempfile.gettempdir()))
    keys = ["seed", "ckpt_path", "tags", "task_name"]
    for group in GROUPS:
        container = OmegaConf.to_container(cfg[group], resolve=False)
        keys += [f"{group}.{k}" for k in _leaves(container)]
    return tuple(k for k in keys if k not in NOT_FUZZED and not any(p in k for p in ("dir", "path", "root")))


def _leaves(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


VALUES = st.one_of(
    st.integers(-3, 64).map(str),
    st.sampled_from(["0.0", "-0.5", "1e-9", "0.03125", "0.5", "2.5", "1e30", "nan", "inf", "-inf"]),
    st.sampled_from(["true", "false", "null", "''", "abc", "cpu", "gpu", "auto", "adam", "min", "val/loss"]),
    st.sampled_from(["bf16-mixed", "16-mixed", "simple", "last", "fashion_mnist", "norm", "value"]),
    st.sampled_from(["[]", "[1,2]", "[a,b]", "{a: 1}", "{}", "1,2", "range(3)", "choice(a,b)"]),
    st.sampled_from(["${model.lr}", "${nope}", "${oc.env:NOPE}", "${oc.env:NOPE,3}", "${now:}"]),
    st.text(alphabet=string.printable.strip(), max_size=6),  # whatever the override grammar makes of it
)
NAMES = st.sampled_from(["foo", "lr", "latent_dims", "max_epoch", "batchsize", "x"])


@st.composite
def overrides(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["set", "set", "set", "add", "delete", "unknown", "group"]))
    if kind == "group":
        group = draw(st.sampled_from(sorted(GROUP_OPTIONS)))
        return f"{group}={draw(st.sampled_from([*GROUP_OPTIONS[group], 'none', 'transformer', 'ede2']))}"
    key = draw(st.sampled_from(fuzzable_keys()))
    if kind == "delete":
        return f"~{key}"
    if kind in ("add", "unknown"):
        key = f"{draw(st.sampled_from(['', *(g + '.' for g in GROUPS)]))}{draw(NAMES)}"
    return f"{'+' if kind == 'add' else ''}{key}={draw(VALUES)}"


def outcome(extra: list[str], data_root: Path) -> str:
    """ "trained" or "error", asserting the property for one list of overrides."""
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            cfg: DictConfig = compose_config("train", [f"data.root={data_root}", *FIXED, *extra], Path(run_dir))
            train(cfg)
        except (KeyboardInterrupt, MemoryError):
            raise
        except BaseException as err:  # noqa: BLE001 - the property: every failure is a one-line user error
            message = user_error_message(err)
            assert message is not None, f"{extra} crashed with a traceback: {type(err).__name__}: {err}"
            assert message.strip() and "\n" not in message, f"{extra}: not one line: {message!r}"
            event(f"error: {type(err).__name__}")
            return "error"
        summary = json.loads((Path(run_dir) / "metrics.json").read_text())
        assert summary["status"] == "completed", f"{extra}: {summary}"
        event("trained")
        return "trained"


@settings(
    max_examples=40,
    derandomize=True,  # the same examples on every CI run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(extra=st.lists(overrides(), min_size=1, max_size=3))
def test_any_override_trains_or_stops_with_one_line(
    extra: list[str], data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")  # logger=wandb may be drawn: no files, no service
    note(f"overrides: {extra}")
    outcome(extra, data_root)


def error_message(extra: list[str], data_root: Path) -> str:
    # Any error: the message is what is checked.
    with tempfile.TemporaryDirectory() as run_dir, pytest.raises(BaseException) as info:
        train(compose_config("train", [f"data.root={data_root}", *FIXED, *extra], Path(run_dir)))
    message = user_error_message(info.value)
    assert message is not None, f"{extra} crashed with a traceback: {info.value!r}"
    return message


# Every crash the fuzzer found, each a traceback before it was fixed.
@pytest.mark.parametrize(
    "override,expected",
    [
        ("seed=abc", "seed='abc' is invalid: must be an integer in [0, 2**32 - 1], or null"),
        ("lr_schedule=null", "a config group cannot be set to null on the command line: remove it with ~"),
        ("seed=-3", "seed=-3 is invalid"),  # Lightning: "-3 is not in bounds" (ValueError)
        ("seed=2.5", "seed=2.5 is invalid"),  # was silently truncated to 2
        ("+model.foo=1", "model.foo is not a setting of EncDec; its settings: latent_dim, width,"),
        ("~model._target_", "model has no _target_"),
        ("model._target_=abc", "model._target_='abc' is not a class that can be imported"),
        ("trainer.precision=abc", "trainer: Precision 'abc' is invalid"),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is invalid: must be a positive integer"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0 is invalid"),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0 is invalid"),
        ("callbacks.reconstructions.num_images=0", "callbacks.reconstructions.num_images=0 is invalid"),
        ("callbacks.reconstructions.images_per_row=0", "callbacks.reconstructions.images_per_row=0 is invalid"),
        ("+callbacks.reconstructions.foo=1", "callbacks.reconstructions.foo is not a setting of ReconstructionGrid"),
        ("+trainer.foo=1", "trainer.foo is not a setting of Trainer; its settings: accelerator, strategy,"),
        ("trainer.detect_anomaly=adam", "trainer.detect_anomaly='adam' is invalid: must be true or false"),
        ("trainer.benchmark=abc", "trainer.benchmark='abc' is invalid: must be true, false or null"),
        ("~seed", "setting 'seed' is missing from the config (deleted with ~seed?)"),
        ("~callbacks.fault_handler._target_", "callbacks.fault_handler has no _target_"),
        ("logger.csv._target_=abc", "logger.csv._target_='abc' is not a class that can be imported"),
        ("callbacks.latent_norm_plot._target_=norm", "callbacks.latent_norm_plot._target_='norm' is not a class that"),
        ("+logger.batchsize=''", "logger.batchsize='' is not a config to build"),
        ("+callbacks.x=1", "callbacks.x=1 is not a config to build"),
        ("data.split_seed=abc", "data.split_seed='abc' is invalid: must be an integer >= 0"),
        ("data.download=abc", "data.download='abc' is invalid: must be true or false"),
        ("model.lr=inf", "non-finite weights after step 1 (encoder."),  # a NaN model must never be saved
    ],
)
def test_fuzzer_findings_stop_with_one_line(override: str, expected: str, data_root: Path) -> None:
    assert expected in error_message([override], data_root)


# The real CLI on both of its paths: an error inside the run (@user_errors) and one while Hydra
# parses the command line (run_cli). One line on stderr, the config-error status, no traceback.
@pytest.mark.parametrize(
    "override,expected",
    [
        ("+model.foo=1", "error: model.foo is not a setting of EncDec"),
        ("model.lr=[1,", "error: cannot parse the override 'model.lr=[1,': "),
    ],
)
def test_cli_examples(override: str, expected: str, tmp_path: Path) -> None:
    result = run_cli("encdec_pl.train", override, f"hydra.run.dir={tmp_path}", "logger=none", "trainer.accelerator=cpu")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(expected), result.stderr[-2000:]
    assert "Traceback" not in result.stdout
