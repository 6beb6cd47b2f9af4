"""End-to-end recipes for the systems reproduced beside the official example (filled in below)."""

from __future__ import annotations

from collections.abc import Callable

RECIPES: dict[str, Callable[..., dict]] = {}
