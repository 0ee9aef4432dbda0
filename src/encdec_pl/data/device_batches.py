"""The fast data path: a whole split held as one uint8 tensor on the training device.

MNIST is 47 MB, so the split fits on any GPU many times over. `DeviceBatches`
shuffles and batches it where it lives and applies the published augmentation
(a random rotation of up to `rotation` degrees) to a whole batch at once, so a
training step never waits for loader workers, PIL, or a host-to-device copy.

It reproduces the per-image path of `MNISTDataModule` (torchvision's
`RandomRotation(degrees)`: an angle uniform in [-degrees, degrees], nearest
neighbour, fill 0, about the image centre) with one `affine_grid` and one
`grid_sample` per batch. tests/test_device_data.py checks both the angle
distribution and the rotation against torchvision.

It is an iterable with `__len__`, `state_dict` and `load_state_dict`: Lightning
treats it like a DataLoader (epochs, `limit_*_batches`, validation) and saves its
position in checkpoints, so a run resumed mid-epoch continues with the very batches
(same order, same angles) that it would have seen without the interruption.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

Batch = tuple[torch.Tensor, torch.Tensor]


def sample_angles(count: int, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """`count` angles uniform in [-degrees, degrees], as torchvision's RandomRotation draws them."""
    return torch.empty(count).uniform_(-degrees, degrees, generator=generator)


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image of (B, C, H, W) by its angle in degrees (counter-clockwise, about the centre).

    Same sampling grid as torchvision's `rotate(..., interpolation=NEAREST, fill=0)`:
    torchvision maps output pixels back to the input with the inverse rotation
    [[cos a, -sin a], [sin a, cos a]] in coordinates centred on the image, which for
    square images is `affine_grid` with align_corners=False (for other shapes the
    normalised coordinates would stretch with the aspect ratio, hence the check).
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotate expects square images, got {tuple(images.shape[-2:])}")
    radians = angles.to(device=images.device, dtype=torch.float32) * (math.pi / 180)
    cos, sin, zero = radians.cos(), radians.sin(), torch.zeros_like(radians)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's part of an epoch's order, like DistributedSampler: equal parts, the last padded from the front."""
    if world_size == 1:
        return order
    per_rank = math.ceil(len(order) / world_size)
    padded = torch.cat([order, order[: per_rank * world_size - len(order)]])
    return padded[rank * per_rank : (rank + 1) * per_rank]


class DeviceImages(Dataset):
    """Map-style view of the held images, as a DataLoader's `dataset` (callbacks read a few by index).

    Items are (float image (1, 28, 28) in [0, 1], label) on the CPU, without augmentation,
    as a DataLoader's dataset gives them.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Batch:
        return self.images[index].float().div_(255).cpu(), self.labels[index].cpu()


class DeviceBatches:
    """Batches of (image float (B, 1, 28, 28) in [0, 1], label) drawn from uint8 tensors on one device.

    images: (N, 28, 28) uint8; labels: (N,). With `shuffle`, every epoch is a fresh
    permutation of all N images (the last batch is smaller when B does not divide N),
    and with `rotation` > 0 each image gets its own random angle. Order and angles of
    epoch e come from a generator seeded with (seed, e), so the stream is reproducible
    and can be resumed at any batch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        rotation: float = 0.0,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.device = torch.device(device)
        # One copy to the device, kept there; the whole of MNIST's training set is 47 MB.
        self.images = images.to(self.device, torch.uint8).unsqueeze(1).contiguous()
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.rotation = batch_size, shuffle, rotation
        self.rank, self.world_size = rank, world_size
        # Drawn from torch's global RNG, which seed_everything has seeded: same seed, same stream.
        self.dataset = DeviceImages(self.images, self.labels)
        self.seed = int(torch.randint(2**31, ())) if seed is None else seed
        self.epoch = -1  # the next __iter__ starts epoch 0
        self.position = 0  # batches already yielded in the current epoch
        self._resume = False

    @property
    def num_samples(self) -> int:
        return math.ceil(len(self.images) / self.world_size)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's image order for `epoch` and each image's angle (None when not rotating), on the device."""
        generator = torch.Generator().manual_seed((self.seed << 24) + epoch)  # distinct for 16M epochs
        n = len(self.images)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        angles = sample_angles(n, self.rotation, generator) if self.rotation > 0 else None
        order = shard(order, self.rank, self.world_size)
        if angles is not None:
            angles = angles[: len(order)].to(self.device)
        return order.to(self.device), angles

    def __iter__(self) -> Iterator[Batch]:
        if not (self._resume and self.position < len(self)):
            self.epoch, self.position = self.epoch + 1, 0
        self._resume = False
        order, angles = self.epoch_plan(self.epoch)
        while self.position < len(self):
            start = self.position * self.batch_size
            index = order[start : start + self.batch_size]
            self.position += 1
            yield self.make_batch(index, None if angles is None else angles[start : start + self.batch_size])

    def make_batch(self, index: torch.Tensor, angles: torch.Tensor | None) -> Batch:
        images = self.images[index].float().div_(255)
        if angles is not None:
            images = rotate(images, angles)
        return images, self.labels[index]

    # Lightning saves these in checkpoints ("loops.fit_loop.state_dict.combined_loader").
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._resume = True
