"""Helpers shared by the unit tests."""

from __future__ import annotations

import json
from pathlib import Path


def stats_without_timings(path: Path) -> str:
    """stats.json's text with its throughput section (seconds, which no two runs repeat) removed."""
    stats = json.loads(path.read_text())
    stats.pop("throughput")
    return json.dumps(stats, sort_keys=True)
