"""Data modules: what a model trains on, each declaring what it yields."""

from encdec_pl.data.images import DATASETS, ImageDataset, MNISTDataModule, ensure_dataset

__all__ = ["DATASETS", "ImageDataset", "MNISTDataModule", "ensure_dataset"]
