"""The fast data path: every image once per epoch, the published rotations, resumable mid-epoch."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from encdec_pl import EncDec
from encdec_pl.data import ImageDataset, MNISTDataModule
from encdec_pl.data.device_batches import DeviceBatches, rotate, sample_angles, shard
from encdec_pl.errors import DataError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def skip_without(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> MNISTDataModule:
    datamodule = MNISTDataModule(root=str(data_root), device_resident=True, download=False)
    datamodule.setup()
    return datamodule


@pytest.mark.parametrize("device", DEVICES)
def test_every_training_image_exactly_once_per_epoch_in_unit_range_on_the_device(
    mnist: MNISTDataModule, device: str
) -> None:
    skip_without(device)
    images = mnist.train_set.images.squeeze(1)
    ids = torch.arange(len(images))  # labels that name the image, so each batch says which images it holds
    loader = DeviceBatches(images, ids, batch_size=128, device=device, shuffle=True, rotation=10.0, seed=1)
    assert len(loader) == math.ceil(55000 / 128)
    orders = []
    for _ in range(2):
        seen = []
        for x, index in loader:
            assert x.device.type == device and index.device.type == device
            assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            seen.append(index.cpu())
        order = torch.cat(seen)
        assert torch.equal(order.sort().values, ids)  # all 55000, none twice
        orders.append(order)
    assert not torch.equal(orders[0], orders[1])  # each epoch has its own order
    image, _ = loader.dataset[0]  # callbacks read a few images by index, on the CPU like a DataLoader's dataset
    assert image.device.type == "cpu" and torch.equal(image, images[0].unsqueeze(0).float() / 255)


def test_data_module_serves_the_same_splits_both_ways(mnist: MNISTDataModule, data_root: Path) -> None:
    workers = MNISTDataModule(root=str(data_root), device_resident=False, num_workers=0, download=False)
    workers.setup()
    assert isinstance(mnist.train_dataloader(), DeviceBatches) and not isinstance(
        workers.train_dataloader(), DeviceBatches
    )
    for split in ("val", "test"):  # no augmentation, no shuffling: the very same batches
        fast = getattr(mnist, f"{split}_dataloader")()
        classic = getattr(workers, f"{split}_dataloader")()
        assert len(fast) == len(classic)
        for (x_fast, y_fast), (x_classic, y_classic) in zip(fast, classic, strict=True):
            assert torch.equal(x_fast, x_classic) and torch.equal(y_fast, y_classic)
    # the training split: same multiset of labels, each image once per epoch
    labels = torch.cat([y for _, y in mnist.train_dataloader()])
    assert torch.equal(labels.sort().values, workers.train_set.labels.sort().values)


def test_auto_puts_data_on_the_device_where_measured_faster(data_root: Path) -> None:
    datamodule = MNISTDataModule(root=str(data_root), download=False)  # device_resident="auto", no trainer: CPU
    from encdec_pl.data.images import DEVICE_RESIDENT_BY_DEVICE

    assert datamodule.uses_device_batches() == DEVICE_RESIDENT_BY_DEVICE["cpu"]
    assert DEVICE_RESIDENT_BY_DEVICE["cuda"] is True


@pytest.mark.parametrize("device", DEVICES)
def test_rotation_matches_torchvision_for_the_same_angle(mnist: MNISTDataModule, device: str) -> None:
    skip_without(device)
    images = mnist.val_set.images[:64]  # uint8 (64, 1, 28, 28)
    angles = torch.linspace(-10, 10, 64)
    angles[:4] = torch.tensor([-10.0, 10.0, 3.7, -0.01])
    fast = rotate(images.to(device).float() / 255, angles.to(device)).cpu()
    reference = (
        torch.stack(
            [
                TF.rotate(img, float(a), interpolation=InterpolationMode.NEAREST, fill=0)
                for img, a in zip(images, angles, strict=True)
            ]
        ).float()
        / 255
    )
    # Nearest-neighbour: a pixel can differ only where a sample point falls on a rounding tie,
    # which the two grids (same formula, different op order) may break differently.
    assert (fast == reference).float().mean() > 0.999
    # and the direction is right: rotating the other way would disagree on many pixels
    assert (rotate(images[4:].float() / 255, -angles[4:]) == reference[4:]).float().mean() < 0.97


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: largest gap between the empirical CDFs."""
    values = torch.cat([a, b]).sort().values
    cdf_a = torch.searchsorted(a.sort().values, values, right=True) / len(a)
    cdf_b = torch.searchsorted(b.sort().values, values, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


def test_angles_have_torchvisions_distribution() -> None:
    n = 20000
    torch.manual_seed(0)
    per_image = v2.RandomRotation(10)  # what MNISTDataModule's worker path applies to each image
    reference = torch.tensor([per_image.make_params([])["angle"] for _ in range(n)])
    fast = sample_angles(n, 10.0, torch.Generator().manual_seed(1))
    assert fast.min() >= -10 and fast.max() <= 10
    # KS test at the 0.1% level: critical value 1.95 * sqrt(2 / n) = 0.0195; a sampler on
    # [-5, 5] or [0, 10] or a normal with std 10/sqrt(3) would give ~0.25, 0.5 and ~0.05.
    assert ks_statistic(fast, reference) < 1.95 * math.sqrt(2 / n)
    assert ks_statistic(fast, sample_angles(n, 5.0, torch.Generator().manual_seed(2))) > 0.2


def test_rotated_images_have_the_same_distribution_both_ways(mnist: MNISTDataModule) -> None:
    """End to end: one image through each path 4000 times; the mean images agree (angles and rotation)."""
    n = 4000
    image, label = mnist.val_set.images[0], mnist.val_set.labels[0]
    torch.manual_seed(0)
    per_image = ImageDataset(image.expand(n, 28, 28).clone(), label.expand(n), v2.RandomRotation(10))
    classic = torch.stack([per_image[i][0] for i in range(n)])
    fast = next(iter(DeviceBatches(image.expand(n, 28, 28), label.expand(n), batch_size=n, rotation=10.0, seed=3)))[0]
    unrotated = image.float() / 255
    # The mean images agree to Monte-Carlo noise; each differs clearly from the unrotated image.
    assert (fast.mean(0) - classic.mean(0)).abs().max() < 0.05
    assert (fast.mean(0) - unrotated).abs().max() > 0.2


def test_resume_mid_epoch_continues_with_the_same_batches(mnist: MNISTDataModule) -> None:
    images, labels = mnist.val_set.images.squeeze(1)[:1000], torch.arange(1000)
    make = lambda: DeviceBatches(images, labels, batch_size=64, shuffle=True, rotation=10.0)  # noqa: E731
    torch.manual_seed(7)
    reference = make()
    uninterrupted = list(reference) + list(reference)  # epochs 0 and 1
    torch.manual_seed(7)
    first = make()
    stream = iter(first)
    seen = [next(stream) for _ in range(5)]
    state = first.state_dict()
    torch.manual_seed(99)  # another seed: the state must carry the stream's own
    resumed = make()
    resumed.load_state_dict(state)
    seen += list(resumed) + list(resumed)  # rest of epoch 0, then epoch 1
    assert len(seen) == len(uninterrupted) == 2 * len(first)
    for (x, y), (x_ref, y_ref) in zip(seen, uninterrupted, strict=True):
        assert torch.equal(y, y_ref) and torch.equal(x, x_ref)
    # a state saved at the end of an epoch resumes at the start of the next one
    end_of_epoch = make()
    end_of_epoch.load_state_dict({**state, "position": len(first)})
    assert torch.equal(next(iter(end_of_epoch))[1], uninterrupted[len(first)][1])


def test_shards_are_equal_and_cover_every_image() -> None:
    order = torch.randperm(55000, generator=torch.Generator().manual_seed(0))
    parts = [shard(order, rank, 3) for rank in range(3)]
    assert {len(p) for p in parts} == {math.ceil(55000 / 3)}  # equal: DDP ranks step together
    assert set(torch.cat(parts).tolist()) == set(range(55000))


class BatchRecorder(L.Callback):
    def __init__(self) -> None:
        self.fingerprints: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.fingerprints.append(float(batch[0].double().sum()))


@pytest.mark.slow
def test_lightning_resumes_mid_epoch_with_the_batches_it_would_have_seen(data_root: Path, tmp_path: Path) -> None:
    """A real Trainer, stopped at step 4 of an epoch and resumed from its checkpoint, sees the same batches 5-8."""

    def fit(max_steps: int, ckpt_path: str | None = None) -> tuple[L.Trainer, BatchRecorder]:
        L.seed_everything(0, verbose=False)
        datamodule = MNISTDataModule(root=str(data_root), batch_size=16, device_resident=True, download=False)
        recorder = BatchRecorder()
        trainer = L.Trainer(
            accelerator="cpu", max_steps=max_steps, callbacks=[recorder], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(EncDec(width=4, latent_dim=4), datamodule=datamodule, ckpt_path=ckpt_path)
        return trainer, recorder

    _, uninterrupted = fit(8)
    stopped, first_half = fit(4)
    stopped.save_checkpoint(tmp_path / "mid_epoch.ckpt")
    resumed, second_half = fit(8, ckpt_path=str(tmp_path / "mid_epoch.ckpt"))
    assert resumed.global_step == 8
    assert first_half.fingerprints + second_half.fingerprints == uninterrupted.fingerprints
    # The stream's position cannot go to a DataLoader: resuming on that path stops with one clear error.
    trainer = L.Trainer(accelerator="cpu", max_steps=8, logger=False, enable_progress_bar=False)
    workers = MNISTDataModule(root=str(data_root), batch_size=16, device_resident=False, num_workers=0, download=False)
    with pytest.raises(DataError, match="resume it with data.device_resident=true"):
        trainer.fit(EncDec(width=4, latent_dim=4), datamodule=workers, ckpt_path=tmp_path / "mid_epoch.ckpt")


@pytest.mark.slow
def test_dataloader_path_resumed_mid_epoch_repeats_the_start_of_the_epoch(data_root: Path, tmp_path: Path) -> None:
    """docs/faults.md: a plain DataLoader has no position, so Lightning restarts its order (and warns)."""

    def fit(max_steps: int, ckpt_path: str | None = None) -> tuple[L.Trainer, BatchRecorder]:
        L.seed_everything(0, verbose=False)
        datamodule = MNISTDataModule(
            root=str(data_root), batch_size=16, device_resident=False, num_workers=0, download=False
        )
        recorder = BatchRecorder()
        trainer = L.Trainer(
            accelerator="cpu", max_steps=max_steps, callbacks=[recorder], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(EncDec(width=4, latent_dim=4), datamodule=datamodule, ckpt_path=ckpt_path)
        return trainer, recorder

    _, uninterrupted = fit(8)
    stopped, first_half = fit(4)
    stopped.save_checkpoint(tmp_path / "mid_epoch.ckpt")
    with pytest.warns(Warning, match="dataloader is not resumable"):
        resumed, second_half = fit(8, ckpt_path=str(tmp_path / "mid_epoch.ckpt"))
    assert resumed.global_step == 8
    assert first_half.fingerprints == uninterrupted.fingerprints[:4]
    # Steps 5-8 after the resume get the batches of steps 1-4 again, not those of the uninterrupted run.
    assert second_half.fingerprints == first_half.fingerprints
    assert second_half.fingerprints != uninterrupted.fingerprints[4:]
