"""Scores of synthetic table rows against real ones (issue 11's protocol, docs/tabular.md).

Pure functions of DataFrames with the table's original columns, plus the table's encoding
spec (encdec_pl.networks.table_encoding) for the distances:

- `quality`: SDMetrics' QualityReport (sdmetrics.reports.QualityReport, the unified one):
  Column Shapes and Column Pair Trends with `real_correlation_threshold` and
  `real_association_threshold` at 0 (every pair counts, as in the published numbers), and
  the Trend at SDMetrics' default thresholds (0.5 / 0.3, which skip weakly related pairs);
- `diagnostic_validity`: SDMetrics' DiagnosticReport "Data Validity" (1.0: every value valid);
- `ml_efficacy`: XGBoost trained on the synthetic rows to predict income, ROC-AUC on the real test rows;
- `detection`: XGBoost telling real from synthetic rows (3-fold ROC-AUC on a balanced set),
  scored 1 - (2 * max(AUC, 0.5) - 1): 1 = indistinguishable, 0 = told apart every time;
- `alpha_beta`: alpha-precision and beta-recall (Alaa et al., ICML 2022; the "naive"
  estimators of synthcity), on the encoded rows;
- `dcr_share`: share of synthetic rows closer to a training row than to a hold-out row
  (equal-sized sets, so 0.5 is ideal; 1.0 means copies of training rows).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from encdec_pl.networks.table_encoding import TableEncoding

TABLE = "table"


def sdmetrics_metadata(spec: dict[str, Any]) -> dict[str, Any]:
    """SDMetrics' unified metadata for one table with the spec's columns."""
    columns = {
        c["name"]: {"sdtype": "categorical"} if c["kind"] == "categorical" else {"sdtype": "numerical"}
        for c in spec["columns"]
    }
    return {"tables": {TABLE: {"columns": columns}}}


def _quiet() -> contextlib.AbstractContextManager:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, spec: dict[str, Any]) -> dict[str, float]:
    """Column Shapes, Column Pair Trends (thresholds 0) and the default-threshold Trend."""
    from sdmetrics.reports import QualityReport

    metadata = sdmetrics_metadata(spec)
    scores: dict[str, float] = {}
    for label, thresholds in (("", (0.0, 0.0)), ("_default_thresholds", None)):
        report = QualityReport()
        if thresholds is not None:
            report.real_correlation_threshold, report.real_association_threshold = thresholds
        with _quiet():
            report.generate({TABLE: real}, {TABLE: synthetic}, metadata, verbose=False)
        props = report.get_properties().set_index("Property")["Score"]
        if not label:
            scores["shape"] = float(props["Column Shapes"])
        scores[f"trend{label}"] = float(props["Column Pair Trends"])
    return scores


def diagnostic_validity(real: pd.DataFrame, synthetic: pd.DataFrame, spec: dict[str, Any]) -> float:
    """SDMetrics' DiagnosticReport "Data Validity" score (1.0 when every value is valid)."""
    from sdmetrics.reports import DiagnosticReport

    report = DiagnosticReport()
    with _quiet():
        report.generate({TABLE: real}, {TABLE: synthetic}, sdmetrics_metadata(spec), verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return float(props["Data Validity"])


def _features(table: pd.DataFrame, spec: dict[str, Any], drop: str | None = None) -> pd.DataFrame:
    """Columns as XGBoost reads them: numbers as floats, categories as pandas categoricals over the spec's levels."""
    out = {}
    for column in spec["columns"]:
        name = column["name"]
        if name == drop:
            continue
        if column["kind"] == "categorical":
            out[name] = pd.Categorical(table[name], categories=column["levels"])
        else:
            out[name] = table[name].astype(np.float64).to_numpy()
    return pd.DataFrame(out)


def _xgb(seed: int, **kwargs: Any) -> Any:
    from xgboost import XGBClassifier

    settings = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "tree_method": "hist",
                "enable_categorical": True, "max_cat_to_onehot": 1, "n_jobs": 1, "random_state": seed}  # fmt: skip
    return XGBClassifier(**{**settings, **kwargs})


def ml_efficacy(synthetic: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], target: str = "income",
                positive: str = ">50K", seed: int = 0) -> float:  # fmt: skip
    """ROC-AUC on the real `test` rows of XGBoost trained on `synthetic` to predict `target`."""
    from sklearn.metrics import roc_auc_score

    y_syn = (synthetic[target] == positive).to_numpy().astype(int)
    y_test = (test[target] == positive).to_numpy().astype(int)
    if y_syn.min() == y_syn.max():  # one class only: the classifier can only guess
        return 0.5
    model = _xgb(seed).fit(_features(synthetic, spec, drop=target), y_syn)
    return float(roc_auc_score(y_test, model.predict_proba(_features(test, spec, drop=target))[:, 1]))


def detection(real: pd.DataFrame, synthetic: pd.DataFrame, spec: dict[str, Any], seed: int = 0) -> float:
    """1 - (2 * max(AUC, 0.5) - 1) of XGBoost telling `real` from `synthetic` rows (3-fold, balanced)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    n = min(len(real), len(synthetic))
    rng = np.random.default_rng(seed)
    real = real.iloc[rng.choice(len(real), n, replace=False)]
    synthetic = synthetic.iloc[rng.choice(len(synthetic), n, replace=False)]
    x = _features(pd.concat([real, synthetic], ignore_index=True), spec)
    y = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
    scores = np.zeros(2 * n)
    for train, held in StratifiedKFold(3, shuffle=True, random_state=seed).split(x, y):
        model = _xgb(seed).fit(x.iloc[train], y[train])
        scores[held] = model.predict_proba(x.iloc[held])[:, 1]
    auc = roc_auc_score(y, scores)
    return float(1 - (2 * max(auc, 0.5) - 1))


def _encoded(table: pd.DataFrame, encoding: TableEncoding) -> np.ndarray:
    return encoding.encode(table).numpy().astype(np.float32)


def _nearest(queries: np.ndarray, points: np.ndarray, k: int = 1, exclude_self: bool = False) -> np.ndarray:
    """Distances from each query to its k-th nearest point (Euclidean), in chunks."""
    q_t, p_t = torch.from_numpy(queries), torch.from_numpy(points)
    out = []
    for start in range(0, len(q_t), 2048):
        d = torch.cdist(q_t[start : start + 2048], p_t)
        kth = k + 1 if exclude_self else k
        out.append(d.topk(kth, dim=1, largest=False).values[:, kth - 1])
    return torch.cat(out).numpy()


def alpha_beta(real: pd.DataFrame, synthetic: pd.DataFrame, encoding: TableEncoding, steps: int = 30,
               seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Alpha-precision and beta-recall (the 'naive' estimators of Alaa et al. 2022, as synthcity computes them).

    On encoded rows (one-hots and quantile-normal numbers), equal-sized sets. alpha-precision:
    1 - 2 * mean |P(synthetic within the real alpha-ball around the real mean) - alpha|; beta-recall:
    the same with the share of real rows whose nearest synthetic row is closer than their
    nearest real neighbour and lies within the synthetic beta-ball.
    """
    n = min(len(real), len(synthetic))
    rng = np.random.default_rng(seed)
    r = _encoded(real.iloc[rng.choice(len(real), n, replace=False)], encoding)
    s = _encoded(synthetic.iloc[rng.choice(len(synthetic), n, replace=False)], encoding)
    center = r.mean(axis=0)
    real_to_center = np.linalg.norm(r - center, axis=1)
    synth_to_center = np.linalg.norm(s - center, axis=1)
    real_nn = _nearest(r, r, k=1, exclude_self=True)  # each real row's nearest other real row
    r_t, s_t = torch.from_numpy(r), torch.from_numpy(s)
    closest = np.concatenate([torch.cdist(r_t[i : i + 2048], s_t).argmin(dim=1).numpy() for i in range(0, n, 2048)])
    real_to_closest_synth = np.linalg.norm(r - s[closest], axis=1)
    closest_synth_to_center = synth_to_center[closest]
    alphas = np.linspace(0, 1, steps)
    precision_curve, recall_curve = [], []
    for a in alphas:
        precision_curve.append(np.mean(synth_to_center <= np.quantile(real_to_center, a)))
        recall_curve.append(np.mean((real_to_closest_synth <= real_nn)
                                    & (closest_synth_to_center <= np.quantile(synth_to_center, a))))  # fmt: skip
    alpha_precision = 1 - 2 * np.mean(np.abs(np.array(precision_curve) - alphas))
    beta_recall = 1 - 2 * np.mean(np.abs(np.array(recall_curve) - alphas))
    return {"alpha_precision": float(alpha_precision), "beta_recall": float(beta_recall)}


def dcr_share(synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, encoding: TableEncoding,
              seed: int = 0) -> float:  # fmt: skip
    """Share of synthetic rows closer (Euclidean, encoded rows) to a training row than to a hold-out row.

    The training rows are subsampled to the hold-out's size, so a sampler that draws from the
    population scores 0.5; ties count half.
    """
    rng = np.random.default_rng(seed)
    n = min(len(train), len(holdout))
    t = _encoded(train.iloc[rng.choice(len(train), n, replace=False)], encoding)
    h = _encoded(holdout.iloc[rng.choice(len(holdout), n, replace=False)], encoding)
    s = _encoded(synthetic, encoding)
    d_train, d_hold = _nearest(s, t), _nearest(s, h)
    return float(np.mean(d_train < d_hold) + 0.5 * np.mean(d_train == d_hold))


def independent_columns(table: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Each column resampled on its own from `table`: right marginals, no joint structure (the floor)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: table[name].to_numpy()[rng.integers(0, len(table), n)] for name in table.columns})


def score_synthetic(synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any],
                    dcr_rows: pd.DataFrame | None = None, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Every score of the protocol for one synthetic set; real = the `test` rows.

    `dcr_rows`: the rows whose DCR share is measured (default `synthetic`); the hold-out
    reference passes rows the model never saw in place of training rows.
    """
    encoding = TableEncoding(spec)
    scores = quality(test, synthetic, spec)
    scores["ml_efficacy_auc"] = ml_efficacy(synthetic, test, spec, seed=seed)
    scores["detection"] = detection(test, synthetic, spec, seed=seed)
    scores.update(alpha_beta(test, synthetic, encoding, seed=seed))
    scores["dcr_share"] = dcr_share(synthetic if dcr_rows is None else dcr_rows, train, test, encoding, seed=seed)
    return scores


def reconstruction_scores(model: Any, rows: torch.Tensor, table: pd.DataFrame) -> dict[str, float]:
    """Per-column reconstruction of `table` (encoded as `rows`) through encode, decode and repair.

    Categorical columns: accuracy; numeric columns: R^2 of the original values. Also their means.
    """
    from encdec_pl.models.sampling import decode_all, encode_all

    model.eval()
    back = model.encoding.decode(decode_all(model, encode_all(model, rows)))
    scores: dict[str, float] = {}
    accuracies, r2s = [], []
    for column in model.encoding.columns:
        name = column["name"]
        if column["kind"] == "categorical":
            value = float((back[name].to_numpy() == table[name].to_numpy()).mean())
            accuracies.append(value)
            scores[f"recon/accuracy/{name}"] = value
        else:
            truth, guess = table[name].to_numpy(np.float64), back[name].to_numpy(np.float64)
            value = float(1 - ((truth - guess) ** 2).sum() / max(((truth - truth.mean()) ** 2).sum(), 1e-12))
            r2s.append(value)
            scores[f"recon/r2/{name}"] = value
    scores["recon/accuracy_mean"] = float(np.mean(accuracies))
    scores["recon/r2_mean"] = float(np.mean(r2s))
    return scores


def income_probe(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                 test_labels: torch.Tensor) -> dict[str, float]:  # fmt: skip
    """Logistic regression of income from codes (standardised): test accuracy and ROC-AUC.

    The rows include the income column, so this asks whether the code keeps it linearly readable.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(train_codes.numpy(), train_labels.numpy())
    proba = probe.predict_proba(test_codes.numpy())[:, 1]
    return {"probe/income_accuracy": float(probe.score(test_codes.numpy(), test_labels.numpy())),
            "probe/income_auc": float(roc_auc_score(test_labels.numpy(), proba))}  # fmt: skip


def score_tabular_model(model: Any, datamodule: Any, num_samples: int | None = None, seed: int = 0,
                        split: str = "test") -> tuple[dict[str, float], pd.DataFrame]:  # fmt: skip
    """Every score of a tabular model on the official test split, and the synthetic rows scored.

    `datamodule`: set up (train/val/test tables and encoded rows). `num_samples`: synthetic
    rows drawn (None: as many as training rows). `split="val"`: the validation rows (held out of
    adult.data) play the test rows' part in every score, for choosing settings without the test split.
    """
    from encdec_pl.models.sampling import encode_all, sample_table
    from encdec_pl.networks.table_encoding import validity

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    train = datamodule.train_table
    held = "val" if split == "val" else "test"
    test, test_set = getattr(datamodule, f"{held}_table"), getattr(datamodule, f"{held}_set")
    spec = model.encoding.spec
    n = len(train) if num_samples is None else num_samples
    synthetic, raw_validity = sample_table(model, datamodule.train_set.rows, n, seed)
    scores = {f"validity_raw/{k}": v for k, v in raw_validity.items()}
    scores["validity_repaired/rows"] = validity(synthetic, spec)
    scores["validity_repaired/sdmetrics"] = diagnostic_validity(train, synthetic, spec)
    scores.update(score_synthetic(synthetic, train, test, spec, seed=seed))
    scores.update(reconstruction_scores(model, test_set.rows, test))
    train_codes = encode_all(model, datamodule.train_set.rows)
    scores.update(income_probe(train_codes, datamodule.train_set.labels, encode_all(model, test_set.rows),
                               test_set.labels))  # fmt: skip
    return scores, synthetic
