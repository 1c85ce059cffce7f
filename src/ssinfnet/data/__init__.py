"""Data: readers for every supported layout, intensity policy, splits, augmentation, demo cohort."""

from ssinfnet.data.sample import Sample, SampleMeta

__all__ = ["Sample", "SampleMeta"]
