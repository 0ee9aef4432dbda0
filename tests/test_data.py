"""The data module on the real MNIST files, and its one-line errors for missing or damaged files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torchvision import datasets

from encdec_pl.data.images import FILE_SIZES, MNISTDataModule, ensure_dataset
from encdec_pl.errors import DataError, InvalidArgument


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> MNISTDataModule:
    datamodule = MNISTDataModule(root=str(data_root), num_workers=0, batch_size=64)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def test_splits_have_the_published_sizes_and_are_disjoint(mnist: MNISTDataModule) -> None:
    assert (len(mnist.train_set), len(mnist.val_set), len(mnist.test_set)) == (55000, 5000, 10000)
    # train and val come from the 60000 training images without overlap: compare the images themselves
    train_keys = {img.numpy().tobytes() for img in mnist.train_set.images[:5000]}
    assert not train_keys & {img.numpy().tobytes() for img in mnist.val_set.images}


def test_batches_are_images_in_unit_range_with_digit_labels(mnist: MNISTDataModule) -> None:
    x, y = next(iter(mnist.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
    assert y.dtype == torch.int64 and set(y.tolist()) <= set(range(10))
    assert mnist.test_set.labels.bincount().tolist()[:2] == [980, 1135]  # MNIST's published test counts


def test_split_does_not_depend_on_the_training_seed(data_root: Path) -> None:
    torch.manual_seed(1)
    a = MNISTDataModule(root=str(data_root), num_workers=0)
    a.setup()
    torch.manual_seed(2)
    b = MNISTDataModule(root=str(data_root), num_workers=0)
    b.setup()
    assert torch.equal(a.val_set.images, b.val_set.images)


def test_training_images_are_rotated_validation_images_are_not(mnist: MNISTDataModule) -> None:
    torch.manual_seed(0)
    first = torch.stack([mnist.train_set[i][0] for i in range(32)])
    second = torch.stack([mnist.train_set[i][0] for i in range(32)])
    assert not torch.equal(first, second)  # a fresh random rotation at every access
    assert torch.equal(mnist.val_set[0][0], mnist.val_set[0][0])


def test_fashion_mnist_loads(data_root: Path) -> None:
    fashion = MNISTDataModule(root=str(data_root), dataset="fashion_mnist", num_workers=0)
    fashion.prepare_data()
    fashion.setup()
    assert len(fashion.test_set) == 10000
    digits = MNISTDataModule(root=str(data_root), num_workers=0)
    digits.setup()
    assert not torch.equal(fashion.test_set.images[:10], digits.test_set.images[:10])


@pytest.fixture
def copied_root(tmp_path: Path, data_root: Path) -> Path:
    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    for f in (tmp_path / "MNIST" / "raw").iterdir():
        f.chmod(0o644)  # the shared copies are read-only
    return tmp_path


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_file_without_download_names_file_folder_and_fix(copied_root: Path) -> None:
    raw = copied_root / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as err:
        ensure_dataset(copied_root, "mnist", download=False)
    message = _one_line(err)
    assert f"MNIST files missing in {raw}: t10k-labels-idx1-ubyte." in message
    assert "ENCDEC_DATA_DIR" in message and "data.root" in message


def test_truncated_file_is_reported_with_its_size(copied_root: Path) -> None:
    path = copied_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    with path.open("r+b") as f:
        f.truncate(1_000_000)
    with pytest.raises(DataError) as err:
        ensure_dataset(copied_root, "mnist", download=True)  # a damaged file is never downloaded over
    message = _one_line(err)
    assert f"train-images-idx3-ubyte truncated (1000000 of {FILE_SIZES['train-images-idx3-ubyte']} bytes)" in message


def test_corrupt_file_of_the_right_size_fails_its_checksum(copied_root: Path) -> None:
    path = copied_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte corrupt"):
        ensure_dataset(copied_root, "mnist")


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate being offline on any machine: the only mirror is a closed local port.
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError) as err:
        ensure_dataset(tmp_path, "mnist", download=True)
    message = _one_line(err)
    assert "download failed" in message and "train-images-idx3-ubyte" in message
    assert "run once with internet access" in message


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(InvalidArgument, match="batch_size"):
        MNISTDataModule(batch_size=0)
    with pytest.raises(InvalidArgument, match="dataset"):
        MNISTDataModule(dataset="cifar")
