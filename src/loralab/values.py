"""What a numeric config value must be, decided once for every check that reads one.

YAML and Hydra turn `true` into a bool, which Python counts as the integer 1, and `inf` /
`nan` into floats that pass every `> 0` test or none: neither is a setting anyone means.
"""

from __future__ import annotations

import math


def is_integer(value) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return is_integer(value) or (isinstance(value, float) and math.isfinite(value))
