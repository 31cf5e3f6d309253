"""The daemon's cyclic collector once it serves: start-up objects frozen, young passes far apart."""

from __future__ import annotations

import json
import subprocess
import sys


def test_settle_collector_freezes_start_up_objects_and_spaces_young_passes() -> None:
    # In a child interpreter: freezing and thresholds are process-wide.
    script = (
        "import gc, json\n"
        "from sshkeep.daemon.server import YOUNG_GC_THRESHOLD, settle_collector\n"
        "before = gc.get_threshold()\n"
        "settle_collector()\n"
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count(), YOUNG_GC_THRESHOLD]))\n"
    )
    argv = [sys.executable, "-c", script]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    before, after, frozen, young = json.loads(out.stdout)
    assert after == [young, before[1], before[2]]
    assert young > before[0]
    assert frozen > 10_000  # the daemon's modules, models and grammar, loaded by the import
