"""UCI Adult (Census Income): the column schema, checked files, download, both splits, and the data module.

The files are the UCI repository's originals, `adult.data` (32,561 rows) and `adult.test`
(16,281 rows), under `<root>/adult/`. Two quirks of the test file are handled here: its
first line (`|1x3 Cross validator`) is not a record, and its labels end in a period
(`<=50K.`, `>50K.`). Values are separated by `, `. Missing values, written `?` (in
workclass, occupation and native-country), are kept as a category of their own, `?`:
they are frequent (7% of rows), informative (`?` occupation goes with `?` workclass), and
every published protocol on this split keeps the rows.

`AdultDataModule`: the official split (train on adult.data, with `val_size` of its rows held
out for validation, drawn with `split_seed`, independent of the training seed; test on
adult.test). The encoding (data/tabular.py) is fitted on the training rows only. Each split
is one float tensor on the training device (29,561 x 110 floats = 13 MB), shuffled and
sliced into batches there (`TableBatches`), so an epoch costs only the model's steps. The
data module declares what it yields: `model_inputs()` is `{"table": spec}`, from which the
models build their tabular networks.
"""

from __future__ import annotations

import hashlib
import io
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from encdec_pl.data.files import require_files
from encdec_pl.data.tabular import TableBatches, TableEncoding, TableRows, fit_spec
from encdec_pl.errors import DataError, is_non_negative_int, is_positive_int, require

FOLDER = "adult"
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
MISSING = "?"


@dataclass(frozen=True)
class AdultFile:
    name: str
    rows: int
    size: int
    md5: str


FILES = {
    "train": AdultFile("adult.data", 32561, 3974305, "5d7c39d7b8804f071cdd1f2a7c460872"),
    "test": AdultFile("adult.test", 16281, 2003153, "35238206dfdf7f1fe215bbb874adecdc"),
}

# (name, levels) for categorical columns, (name, None) for numeric ones, in file order.
# Levels as adult.names lists them, `?` last where the column has missing values.
COLUMNS: list[tuple[str, list[str] | None]] = [
    ("age", None),
    ("workclass", ["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
                   "Without-pay", "Never-worked", MISSING]),
    ("fnlwgt", None),
    ("education", ["Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm", "Assoc-voc", "9th",
                   "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate", "5th-6th", "Preschool"]),
    ("education-num", None),
    ("marital-status", ["Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
                        "Married-spouse-absent", "Married-AF-spouse"]),
    ("occupation", ["Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial", "Prof-specialty",
                    "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical", "Farming-fishing", "Transport-moving",
                    "Priv-house-serv", "Protective-serv", "Armed-Forces", MISSING]),
    ("relationship", ["Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"]),
    ("race", ["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"]),
    ("sex", ["Female", "Male"]),
    ("capital-gain", None),
    ("capital-loss", None),
    ("hours-per-week", None),
    ("native-country", ["United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
                        "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba", "Iran",
                        "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal",
                        "Ireland", "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia",
                        "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia", "El-Salvador",
                        "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands", MISSING]),
    ("income", ["<=50K", ">50K"]),
]  # fmt: skip
TARGET = "income"
NUMERIC = [name for name, levels in COLUMNS if levels is None]
CATEGORICAL = {name: levels for name, levels in COLUMNS if levels is not None}


def _problem(path: Path, spec: AdultFile) -> str | None:
    """Why `path` is unusable (missing, truncated, corrupt), or None when it is fine."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != spec.size:
        return f"truncated ({size} of {spec.size} bytes)" if size < spec.size else f"wrong size ({size} bytes)"
    if hashlib.md5(path.read_bytes()).hexdigest() != spec.md5:
        return "corrupt (MD5 mismatch)"
    return None


def ensure_adult(root: str | Path, download: bool = True) -> Path:
    """Make sure `<root>/adult/adult.data` and `adult.test` are complete; return the folder.

    Missing files are downloaded from the UCI archive when `download` is on and the network
    answers; damaged ones are never overwritten. Raises DataError with one line naming the
    files, what is wrong with them, and the fix.
    """
    folder = Path(root).expanduser().absolute() / FOLDER

    def problems() -> dict[str, str]:
        found = {spec.name: _problem(folder / spec.name, spec) for spec in FILES.values()}
        return {name: problem for name, problem in found.items() if problem}

    require_files("Adult", folder, problems, download, lambda: _download(folder, list(problems())),
                  "adult/adult.data and adult/adult.test", source=f" from {URL}")  # fmt: skip
    return folder


def _download(folder: Path, names: list[str]) -> str:
    """Fetch `names` from the UCI archive into `folder`; return why it failed ('' on success)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            with urllib.request.urlopen(URL + name, timeout=30) as response:  # noqa: S310 - a fixed https URL
                data = response.read()
            partial = folder / f"{name}.part"
            partial.write_bytes(data)
            partial.replace(folder / name)  # never a half-written file under the real name
    except Exception as err:  # noqa: BLE001 - URLError, timeouts, OSError...: all mean "no data"
        return (str(err).strip() or type(err).__name__).splitlines()[0][:200]
    return ""


def read_split(folder: Path, split: str) -> pd.DataFrame:
    """One split ("train": adult.data, "test": adult.test) as a DataFrame with the original column names.

    Numeric columns are int64 (every Adult number is an integer); categorical ones are strings,
    `?` included; the test labels lose their trailing period. Raises DataError when the file
    does not hold the expected rows and columns.
    """
    spec = FILES[split]
    path = folder / spec.name
    text = path.read_text(encoding="ascii")
    if split == "test" and text.startswith("|"):
        text = text.split("\n", 1)[1]  # "|1x3 Cross validator": not a record
    names = [name for name, _ in COLUMNS]
    try:
        table = pd.read_csv(io.StringIO(text), header=None, names=names, sep=", ", engine="python",
                            skip_blank_lines=True, dtype=str)  # fmt: skip
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{path} is not the Adult file ({str(err).splitlines()[0]}); replace it with UCI's") from err
    if len(table) != spec.rows or table.isna().any().any():
        raise DataError(f"{path} holds {len(table)} complete rows, not {spec.rows}: replace it with UCI's {spec.name}")
    table[TARGET] = table[TARGET].str.rstrip(".")
    for name in NUMERIC:
        table[name] = table[name].astype("int64")
    for name, levels in CATEGORICAL.items():
        unknown = set(table[name]) - set(levels)
        if unknown:
            raise DataError(f"{path}: column {name} holds values outside its levels: {sorted(unknown)[:3]}")
    return table


def load_adult(root: str | Path, download: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): adult.data and adult.test, checked (and downloaded when missing)."""
    folder = ensure_adult(root, download)
    return read_split(folder, "train"), read_split(folder, "test")


class AdultDataModule(L.LightningDataModule):
    """UCI Adult, official split, encoded per type, held on the training device (unless device_resident=false).

    After `setup()`: `train_table`, `val_table`, `test_table` (DataFrames with the original
    columns and values), `encoding` (fitted on `train_table`), and `train_set`, `val_set`,
    `test_set` (encoded rows and income labels).
    """

    def __init__(
        self,
        root: str = "data",
        dataset: str = "adult",
        batch_size: int = 500,
        val_size: int = 3000,
        split_seed: int = 0,
        download: bool = True,
        n_quantiles: int = 1000,
        device_resident: bool | str = "auto",
    ) -> None:
        super().__init__()
        require(dataset == "adult", "dataset", dataset, "adult")
        require(device_resident in (True, False, "auto"), "device_resident", device_resident, "true, false or auto")
        require(is_positive_int(batch_size), "batch_size", batch_size, "a positive integer")
        require(is_positive_int(val_size) and val_size < 32561, "val_size", val_size, "an integer in [1, 32560]")
        require(is_non_negative_int(split_seed), "split_seed", split_seed, "an integer >= 0")
        require(isinstance(download, bool), "download", download, "true or false")
        require(isinstance(root, (str, Path)), "root", root, "a folder path")
        require(is_positive_int(n_quantiles) and n_quantiles >= 2, "n_quantiles", n_quantiles, "an integer >= 2")
        self.save_hyperparameters()
        self.root, self.dataset_name, self.batch_size = root, dataset, batch_size
        self.val_size, self.split_seed, self.download, self.n_quantiles = val_size, split_seed, download, n_quantiles
        # The table is small (a few MB encoded), so it lives on the training device unless told not to
        # (speed=off: batches cut on the CPU, each moved by Lightning, as a DataLoader's would be).
        self.device_resident = device_resident is not False
        self.encoding: TableEncoding | None = None
        self.train_table = self.val_table = self.test_table = None
        self.train_set: TableRows | None = None
        self.val_set: TableRows | None = None
        self.test_set: TableRows | None = None
        self._batches: dict[str, TableBatches] = {}
        self._files_checked = False

    def prepare_data(self) -> None:
        if not self._files_checked:
            ensure_adult(self.root, self.download)
            self._files_checked = True

    def setup(self, stage: str | None = None) -> None:
        if self.encoding is not None:
            return
        folder = ensure_adult(self.root, self.download and not self._files_checked)
        self._files_checked = True
        train, test = read_split(folder, "train"), read_split(folder, "test")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed)).numpy()
        self.val_table = train.iloc[order[: self.val_size]].reset_index(drop=True)
        self.train_table = train.iloc[order[self.val_size :]].reset_index(drop=True)
        self.test_table = test
        self.encoding = TableEncoding(fit_spec(self.train_table, CATEGORICAL, self.n_quantiles))
        self.train_set, self.val_set, self.test_set = (self.rows(t) for t in (self.train_table, self.val_table, test))

    def rows(self, table: pd.DataFrame) -> TableRows:
        """Encoded rows and income labels (0: <=50K, 1: >50K) of a table with Adult's columns."""
        assert self.encoding is not None, "call setup() first"
        labels = torch.tensor((table[TARGET] == ">50K").to_numpy(), dtype=torch.long)
        return TableRows(self.encoding.encode(table), labels)

    def model_inputs(self) -> dict[str, Any]:
        """What the models build their networks from: the table's encoding."""
        self.setup()
        assert self.encoding is not None
        return {"table": self.encoding.spec}

    @property
    def device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        on_device = trainer is not None and self.device_resident
        return trainer.strategy.root_device if on_device else torch.device("cpu")

    def _loader(self, split: str, dataset: TableRows | None, shuffle: bool) -> TableBatches:
        assert dataset is not None, "call setup() first"
        loader = self._batches.get(split)
        if loader is None or loader.device != self.device:
            loader = TableBatches(dataset.rows, dataset.labels, self.batch_size, self.device, shuffle)
            self._batches[split] = loader
        return loader

    def train_dataloader(self) -> TableBatches:
        return self._loader("train", self.train_set, shuffle=True)

    def val_dataloader(self) -> TableBatches:
        return self._loader("val", self.val_set, shuffle=False)

    def test_dataloader(self) -> TableBatches:
        return self._loader("test", self.test_set, shuffle=False)


def datamodule_from_checkpoint(checkpoint: dict, root: str | Path, download: bool = False) -> AdultDataModule:
    """The data module a tabular training checkpoint was trained with (same split and encoding), set up.

    Lightning keeps the data module's arguments in the checkpoint; only the data root is taken
    from the caller, since the files may live elsewhere now.
    """
    settings = {**(checkpoint.get("datamodule_hyper_parameters") or {}), "root": str(root), "download": download}
    datamodule = AdultDataModule(**settings)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule
