"""MNIST and Fashion-MNIST as a LightningDataModule, with checked files and one-line errors.

Files live in torchvision's layout, `<root>/<MNIST|FashionMNIST>/raw/*-ubyte`.
Before anything is read, every file is checked against its known size and MD5:
a missing file is downloaded (when `download` is on and the network answers), and
a truncated or corrupt one stops the run with a message naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from encdec_pl.data.device_batches import DeviceBatches
from encdec_pl.data.files import require_files
from encdec_pl.errors import DataError, is_non_negative_int, is_number, is_positive_int, require
from encdec_pl.networks.image import IMAGE_SHAPE, ImageSpec


@dataclass(frozen=True)
class DatasetSpec:
    torchvision_class: type[datasets.MNIST]
    folder: str
    md5: dict[str, str]  # uncompressed raw file -> MD5; these files never change upstream


# Both datasets share file names and sizes: 16-byte header + 60000 or 10000 images of 28x28,
# 8-byte header + one byte per label.
FILE_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

DATASETS = {
    "mnist": DatasetSpec(
        datasets.MNIST,
        "MNIST",
        {
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
    ),
    "fashion_mnist": DatasetSpec(
        datasets.FashionMNIST,
        "FashionMNIST",
        {
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
}


def _file_problem(path: Path, expected_md5: str) -> str | None:
    """Why `path` is unusable (missing, truncated, corrupt), or None when it is fine."""
    if not path.is_file():
        return "missing"
    size, expected_size = path.stat().st_size, FILE_SIZES[path.name]
    if size != expected_size:
        return f"truncated ({size} of {expected_size} bytes)" if size < expected_size else f"wrong size ({size} bytes)"
    if hashlib.md5(path.read_bytes()).hexdigest() != expected_md5:
        return "corrupt (MD5 mismatch)"
    return None


def ensure_dataset(root: str | Path, name: str, download: bool = True) -> Path:
    """Make sure the raw files of dataset `name` are complete under `root`; return the raw folder.

    Raises DataError, with one line saying which files are wrong, where, and how to fix it.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    root = Path(root).expanduser().absolute()
    raw = root / spec.folder / "raw"

    def problems() -> dict[str, str]:
        found = {f: _file_problem(raw / f, md5) for f, md5 in spec.md5.items()}
        return {f: p for f, p in found.items() if p}

    require_files(spec.folder, raw, problems, download, lambda: _download(spec, root), f"{spec.folder}/raw/*-ubyte")
    return raw


def _download(spec: DatasetSpec, root: Path) -> str:
    """Let torchvision download the dataset; return why it failed ('' on success)."""
    chatter = io.StringIO()  # torchvision prints progress and a line per mirror tried
    # torchvision makes <root>/<folder>/raw before downloading; a failed download must not leave
    # them behind (data.root=/typo would otherwise create /typo/MNIST/raw).
    raw = root / spec.folder / "raw"
    made = next((folder for folder in (raw, *raw.parents) if folder.parent.exists()), raw)
    made = None if made.exists() else made
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            spec.torchvision_class(root, train=True, download=True)
            spec.torchvision_class(root, train=False, download=True)
    except Exception as err:  # noqa: BLE001 - URLError, HTTPError, RuntimeError, OSError... all mean "no data"
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        # torchvision's message lists every mirror tried; the last line holds the last mirror's error.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return (lines[-1] if lines else type(err).__name__)[:200]
    return ""


class ImageDataset(Dataset):
    """uint8 images (N, 28, 28) and labels -> (float image (1, 28, 28) in [0, 1], label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any = None) -> None:
        self.images, self.labels, self.transform = images.unsqueeze(1), labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image as one float tensor (N, 1, 28, 28) in [0, 1], without augmentation, and the labels."""
        return self.images.float().div(255), self.labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image.float().div_(255), self.labels[index]


# What device_resident="auto" picks, by the type of the training device (measured: docs/speed.md).
DEVICE_RESIDENT_BY_DEVICE = {"cuda": True, "cpu": True}


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or Fashion-MNIST) with a train/val split of the training set; the test set is kept for testing.

    Training images are randomly rotated by up to `rotation` degrees (the published
    augmentation). Two ways to serve them, chosen by `device_resident`:
    - True: each split lives on the training device as one uint8 tensor, shuffled,
      batched and rotated there a whole batch at a time (encdec_pl.data.device_batches);
    - False: the classic DataLoader, rotating one image at a time in `num_workers`
      worker processes and copying each batch to the device.
    "auto" picks by device type (DEVICE_RESIDENT_BY_DEVICE). Both give the same
    distribution of images and rotations. The split is drawn with its own seed, so the
    validation images stay the same whatever the training seed.
    """

    def __init__(
        self,
        root: str = "data",
        dataset: str = "mnist",
        batch_size: int = 128,
        val_size: int = 5000,
        rotation: float = 10.0,
        num_workers: int = 2,
        split_seed: int = 0,
        download: bool = True,
        device_resident: bool | str = "auto",
    ) -> None:
        super().__init__()
        require(dataset in DATASETS, "dataset", dataset, f"one of {sorted(DATASETS)}")
        require(is_positive_int(batch_size), "batch_size", batch_size, "a positive integer")
        require(is_positive_int(val_size) and val_size < 60000, "val_size", val_size, "an integer in [1, 59999]")
        require(is_number(rotation) and 0 <= rotation <= 180, "rotation", rotation, "in [0, 180] degrees")
        require(is_non_negative_int(num_workers), "num_workers", num_workers, "an integer >= 0")
        require(is_non_negative_int(split_seed), "split_seed", split_seed, "an integer >= 0")
        require(isinstance(download, bool), "download", download, "true or false")
        require(isinstance(root, (str, Path)), "root", root, "a folder path")
        require(device_resident in (True, False, "auto"), "device_resident", device_resident, "true, false or auto")
        self.save_hyperparameters()
        self.root, self.dataset_name, self.batch_size = root, dataset, batch_size
        self.val_size, self.rotation, self.num_workers = val_size, rotation, num_workers
        self.split_seed, self.download, self.device_resident = split_seed, download, device_resident
        self._device_batches: dict[str, DeviceBatches] = {}  # kept: the training stream's position lives in it
        self.train_set: ImageDataset | None = None
        self.val_set: ImageDataset | None = None
        self.test_set: ImageDataset | None = None
        self._files_checked = False

    @property
    def data_spec(self) -> ImageSpec:
        """What the batches hold: (image (1, 28, 28) in [0, 1], label); the model builds its networks for it."""
        return ImageSpec(IMAGE_SHAPE)

    def prepare_data(self) -> None:
        if not self._files_checked:
            ensure_dataset(self.root, self.dataset_name, self.download)
            self._files_checked = True

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not self._files_checked:  # setup() called directly, without prepare_data()
            ensure_dataset(self.root, self.dataset_name, download=False)
        tv_class = DATASETS[self.dataset_name].torchvision_class
        train = tv_class(self.root, train=True)
        test = tv_class(self.root, train=False)
        order = torch.randperm(len(train.data), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[self.val_size :], order[: self.val_size]
        rotate = v2.RandomRotation(self.rotation) if self.rotation > 0 else None
        self.train_set = ImageDataset(train.data[train_idx], train.targets[train_idx], rotate)
        self.val_set = ImageDataset(train.data[val_idx], train.targets[val_idx])
        self.test_set = ImageDataset(test.data, test.targets)

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("train", self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("val", self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test", self.test_set, shuffle=False)

    @property
    def device(self) -> torch.device:
        """The training device: the trainer's when attached, else the CPU."""
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def uses_device_batches(self) -> bool:
        if self.device_resident == "auto":
            return DEVICE_RESIDENT_BY_DEVICE.get(self.device.type, False)
        return bool(self.device_resident)

    def _loader(self, split: str, dataset: ImageDataset | None, shuffle: bool) -> DataLoader | DeviceBatches:
        assert dataset is not None, "call setup() first"
        if self.uses_device_batches():
            return self._device_loader(split, dataset, shuffle)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    # Checkpoints record the data path: the fast path's stream position is saved with the
    # training loop, and Lightning cannot hand it to a DataLoader.
    def state_dict(self) -> dict[str, Any]:
        return {"device_resident": self.uses_device_batches()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("device_resident") and not self.uses_device_batches():
            raise DataError(
                "this checkpoint was trained with device-resident batches and holds their position; "
                "resume it with data.device_resident=true (or start a new run with false)"
            )

    def _device_loader(self, split: str, dataset: ImageDataset, shuffle: bool) -> DeviceBatches:
        # Built once per split and device: Lightning asks again after a resume or a reload,
        # and the training stream must keep its seed and position.
        loader = self._device_batches.get(split)
        if loader is None or loader.device != self.device:
            trainer = getattr(self, "trainer", None)
            loader = DeviceBatches(
                dataset.images.squeeze(1),
                dataset.labels,
                self.batch_size,
                device=self.device,
                shuffle=shuffle,
                rotation=self.rotation if dataset.transform is not None else 0.0,
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
            self._device_batches[split] = loader
        return loader
