"""daemon/sessions/pacer.py: when a terminal's next log scan runs while a command streams output."""

from __future__ import annotations

from sshkeep.daemon.sessions.pacer import FIRST_HOLD, MAX_HOLD, STREAMING_BYTES, ScanPacer


def test_small_reads_are_never_held() -> None:
    p = ScanPacer()
    for _ in range(10):
        assert p.after_scan(STREAMING_BYTES - 1, running=True, prompted=False) == 0.0


def test_streaming_output_holds_doubling_up_to_the_cap() -> None:
    p = ScanPacer()
    holds = [p.after_scan(STREAMING_BYTES, running=True, prompted=False) for _ in range(8)]
    assert holds[0] == FIRST_HOLD
    assert holds[1] == 2 * FIRST_HOLD
    assert max(holds) == MAX_HOLD == holds[-1]
    assert holds == sorted(holds)


def test_once_held_any_new_output_keeps_the_pace() -> None:
    p = ScanPacer()
    p.after_scan(STREAMING_BYTES, running=True, prompted=False)
    assert p.after_scan(10, running=True, prompted=False) == 2 * FIRST_HOLD


def test_a_held_scan_that_found_nothing_ends_the_pacing() -> None:
    p = ScanPacer()
    p.after_scan(STREAMING_BYTES * 4, running=True, prompted=False)
    assert p.after_scan(0, running=True, prompted=False) == 0.0
    # The first change after that quiet is read at once; a big one starts pacing from the start.
    assert p.after_scan(STREAMING_BYTES, running=True, prompted=False) == FIRST_HOLD


def test_a_prompt_or_no_running_command_is_never_held() -> None:
    p = ScanPacer()
    p.after_scan(STREAMING_BYTES, running=True, prompted=False)
    assert p.after_scan(STREAMING_BYTES, running=True, prompted=True) == 0.0
    p.after_scan(STREAMING_BYTES, running=True, prompted=False)
    assert p.after_scan(STREAMING_BYTES, running=False, prompted=False) == 0.0
    assert p.after_scan(STREAMING_BYTES * 10, running=False, prompted=False) == 0.0
