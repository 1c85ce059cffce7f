"""Label values of every mask in the project (index = value)."""

from __future__ import annotations

#: 0 background, 1 ground-glass opacity, 2 consolidation.
CLASS_NAMES = ("background", "GGO", "consolidation")
