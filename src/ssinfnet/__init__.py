"""ssinfnet: self-supervised Inf-Net for COVID-19 lung lesion segmentation in chest CT."""

__version__ = "0.1.0"
