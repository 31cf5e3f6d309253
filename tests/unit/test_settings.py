"""config.yml's settings: typed, bounded, with problems that name the key."""

from __future__ import annotations

from sshkeep.common.settings import MB, Settings


def test_defaults() -> None:
    s = Settings.parse({})
    assert s == Settings()
    assert (s.log_cap_bytes, s.max_transfer_bytes, s.dead_session_max_age) == (256 * MB, 64 * MB, 86400)
    assert s.audit_rotation == (10 * MB, 3) and s.daemon_log_rotation == (10 * MB, 3)
    assert s.problems == ()


def test_valid_values_are_typed() -> None:
    s = Settings.parse(
        {"log_cap_mb": "1.5", "max_transfer_mb": 0.1, "audit_keep": 5.0, "dead_session_max_age": 0}
    )
    assert s.log_cap_bytes == int(1.5 * MB) and s.max_transfer_bytes == int(0.1 * MB)
    assert s.audit_keep == 5 and isinstance(s.audit_keep, int)
    assert s.dead_session_max_age == 0


def test_bad_values_fall_back_and_name_the_key() -> None:
    s = Settings.parse({"log_cap_mb": -1, "max_transfer_mb": True, "audit_keep": "many", "colour": 1})
    assert (s.log_cap_mb, s.max_transfer_mb, s.audit_keep) == (256, 64, 3)
    assert s.problems == (
        "settings.log_cap_mb: -1 is not a number between 0.01 and 1.04858e+06; using the default 256",
        "settings.max_transfer_mb: True is not a number between 0.001 and 65536; using the default 64",
        "settings.audit_keep: 'many' is not a number between 0 and 100; using the default 3",
        "settings.colour: unknown setting (known: log_cap_mb, max_transfer_mb, dead_session_max_age, "
        "finished_job_max_age, audit_max_bytes, audit_keep, daemon_log_max_bytes, daemon_log_keep, "
        "approval_ttl, max_local_transfer_mb, mcp_max_wait_seconds, policy, local_roots)",
    )


def test_local_roots_are_a_list_of_directories() -> None:
    assert Settings.parse({"local_roots": ["/srv/x", " ~/dl "]}).local_roots == ("/srv/x", "~/dl")
    bad = Settings.parse({"local_roots": "/srv/x"})
    assert bad.local_roots == () and bad.problems[0].startswith("settings.local_roots: ")
