"""The benchmark's own arithmetic: which rows show a p95, and CPU time per process read to better
than a clock tick. bench/bench.py is a script of the repository, not of the package: it runs here
as it does by hand, from its own folder, in a child Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def in_bench(code: str) -> Any:
    """What `code` (run with bench.py importable as `bench`) prints, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_p95_is_shown_for_rows_of_five_samples_or_more() -> None:
    rendered = in_bench(
        "import json, bench\n"
        "t = bench.Table()\n"
        "t.add(bench.Row('five', samples=[1.0, 2.0, 3.0, 4.0, 10.0]))\n"
        "t.add(bench.Row('four', samples=[1.0, 2.0, 3.0, 4.0]))\n"
        "t.add(bench.Row('value', unit='MB', value=72.0))\n"
        "print(json.dumps(t.render().splitlines()))\n"
    )
    lines = {line.split()[0]: line.split() for line in rendered[2:]}
    assert lines["five"][1:] == ["3.0", "ms", "8.8", "5"]  # p95: 4.0 + 0.8 * (10.0 - 4.0)
    assert lines["four"][1:] == ["2.5", "ms", "4"]  # median, unit, n: no p95
    assert lines["value"][1:] == ["72.0", "MB"]


SPIN = """\
import sys, time
while time.process_time() < 0.045:
    pass
sys.stdout.write("spun\\n")
sys.stdout.flush()
sys.stdin.read()
"""


def test_a_process_cpu_is_read_to_better_than_a_tick() -> None:
    """45 ms of CPU reads as 4 ticks (40 ms) in /proc/PID/stat; its threads' run time says 45+."""
    child = subprocess.Popen(
        [sys.executable, "-c", SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "spun\n"
        pid = child.pid
        tree, ran = in_bench(
            f"import json, bench\nprint(json.dumps([bench.tree_cpu([{pid}]), bench.run_seconds({pid})]))"
        )
        name, seconds = tree[str(child.pid)]
        assert name.startswith("python")
        assert seconds >= 0.045
        assert ran >= 0.045
    finally:
        child.kill()
        child.wait()


def test_cpu_by_name_sums_what_each_process_spent_between_snapshots() -> None:
    spent = in_bench(
        "import json, bench\n"
        "before = {10: ('bash', 1.0), 11: ('bash', 2.0), 12: ('daemon-ish', 5.0)}\n"
        "after = {10: ('bash', 1.5), 11: ('bash', 2.25), 12: ('daemon-ish', 5.5), 13: ('sshd', 0.125)}\n"
        "print(json.dumps(bench.cpu_by_name(before, after, {12: 'daemon'})))\n"
    )
    assert spent == {"bash": 0.75, "daemon": 0.5, "sshd": 0.125}


def test_run_seconds_of_a_gone_process_is_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its /proc entry is gone
    assert in_bench(f"import json, bench\nprint(json.dumps(bench.run_seconds({child.pid})))") is None


def test_a_ratio_that_rounds_to_its_target_shows_one_more_digit() -> None:
    shown = in_bench(
        "import json, bench\n"
        "print(json.dumps([bench.times(0.796, 0.8), bench.times(0.83, 0.8), bench.times(1.104, 1.1),\n"
        "                  bench.times(1.1, 1.1), bench.times(9.96, 10, 1), bench.times(13.84, 10, 1)]))\n"
    )
    assert shown == ["0.796x", "0.83x", "1.104x", "1.10x", "9.96x", "13.8x"]
