"""Data for supernet training and search: the embedded digits, image folders and torchvision datasets via timm.

``build_data(DataConfig(...))`` returns ``DataSplits`` (train, un-augmented train, search and validation
datasets, with loaders); ``fixed_batches`` holds a seeded set of batches in memory for BatchNorm recalibration
and candidate evaluation; ``build_mixup`` gives timm's mixup/cutmix when enabled.
"""

from nasvit.data.build import SPLITS, DataSplits, build_data
from nasvit.data.config import DATASET_STATS, DIGITS, TORCH_DATASETS, DataConfig
from nasvit.data.digits import DigitsDataset, load_digit_images
from nasvit.data.loader import SeededShuffleSampler, fixed_batches, make_loader, set_epoch
from nasvit.data.mixup import build_mixup
from nasvit.data.splits import hold_out_per_class, split_fractions
from nasvit.data.transforms import TransformedSubset, build_transforms, set_randaugment_magnitude

__all__ = [
    "DATASET_STATS",
    "DIGITS",
    "SPLITS",
    "TORCH_DATASETS",
    "DataConfig",
    "DataSplits",
    "DigitsDataset",
    "SeededShuffleSampler",
    "TransformedSubset",
    "build_data",
    "build_mixup",
    "build_transforms",
    "fixed_batches",
    "hold_out_per_class",
    "load_digit_images",
    "make_loader",
    "set_epoch",
    "set_randaugment_magnitude",
    "split_fractions",
]
