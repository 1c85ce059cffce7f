"""ssinfnet: self-supervised Inf-Net for COVID-19 lung lesion segmentation in chest CT.

``ssinfnet.segment(path_or_array, model=None, ...)`` segments a scan with the bundled model (see
:func:`ssinfnet.inference.segment.segment`); it is imported on first use so that ``import ssinfnet``
stays light.
"""

__version__ = "0.1.0"
__all__ = ["segment"]


def __getattr__(name: str):
    if name == "segment":
        from ssinfnet.inference.segment import segment

        return segment
    raise AttributeError(f"module 'ssinfnet' has no attribute {name!r}")
