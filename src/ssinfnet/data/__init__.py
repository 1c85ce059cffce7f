"""Data: readers for every supported layout, intensity policy, splits, augmentation, demo cohort."""

from ssinfnet.data.sample import CLASS_NAMES, Sample, SampleMeta

__all__ = ["CLASS_NAMES", "Sample", "SampleMeta"]
