"""Connections in config.yml as ssh sees them: jump entries, secret options, lookups, the listing."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from sshkeep.common.errors import ConfigError
from sshkeep.daemon.api.configs import config_list
from tests.support import load_config_text


def test_jump_entry_becomes_a_proxy_command_with_its_own_options(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          web:
            host: 10.0.0.5
            user: deploy
            proxy_jump: bastion
          bastion:
            host: bastion.example.com
            port: 2200
            user: jump
            key_path: /keys/jump key
            ssh_options: {UserKnownHostsFile: /kh/100%.txt}
        """,
    )
    args = cfg.ssh_args(cfg.get("web"))
    assert args[:2] == ["-l", "deploy"] and args[2] == "-o" and len(args) == 4
    assert args[3].startswith("ProxyCommand=env SSHKEEP_ASKPASS_HOP=bastion ")
    words = shlex.split(args[3].removeprefix("ProxyCommand="))
    assert words == [
        "env",
        "SSHKEEP_ASKPASS_HOP=bastion",
        "ssh",
        *["-l", "jump", "-p", "2200", "-i", "/keys/jump key"],
        *["-o", "UserKnownHostsFile=/kh/100%%.txt"],  # ssh %-expands ProxyCommand: a literal % doubles
        *["-W", "[%h]:%p", "--", "bastion.example.com"],
    ]


def test_jump_chain_nests_and_escapes_once_per_level(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          a: {host: ha, proxy_jump: b}
          b: {host: hb, proxy_jump: c}
          c: {host: hc, password: pw}
        """,
    )
    assert [j.name for j in cfg.jump_chain(cfg.get("a"))] == ["b", "c"]
    outer = shlex.split(cfg.ssh_args(cfg.get("a"))[1].removeprefix("ProxyCommand="))
    assert outer[:3] == ["env", "SSHKEEP_ASKPASS_HOP=b", "ssh"]
    assert outer[-4:] == ["-W", "[%h]:%p", "--", "hb"]
    inner_option = outer[outer.index("-o") + 1]
    # b's own ProxyCommand is an argument of b's ssh: its %h must survive a's expansion once.
    inner = shlex.split(inner_option.removeprefix("ProxyCommand="))
    assert inner[:3] == ["env", "SSHKEEP_ASKPASS_HOP=c", "ssh"]
    assert inner[-6:] == ["-o", "NumberOfPasswordPrompts=1", "-W", "[%%h]:%%p", "--", "hc"]


def test_non_entry_jump_is_passed_to_ssh_as_given(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path, "connections: {web: {host: h, proxy_jump: 'me@jump.example.com:2222'}}\n"
    )
    assert cfg.ssh_args(cfg.get("web")) == ["-J", "me@jump.example.com:2222"]
    assert cfg.jump_chain(cfg.get("web")) == []


def test_jump_loops_and_broken_jumps_are_config_errors(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          a: {host: ha, proxy_jump: b}
          b: {host: hb, proxy_jump: a}
          c: {host: hc, proxy_jump: d}
          d: {host: hd, port: nope}
        """,
    )
    with pytest.raises(ConfigError, match=r"connections\.b\.proxy_jump: jump hosts loop \(a -> b -> a\)"):
        cfg.ssh_args(cfg.get("a"))
    with pytest.raises(ConfigError, match=r"connections\.d\.port: not an integer"):
        cfg.ssh_args(cfg.get("c"))


def test_a_secret_limits_password_prompts_unless_set(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          pw: {host: h, password: x}
          pp: {host: h, key_passphrase: y}
          own: {host: h, password: x, ssh_options: {numberofpasswordprompts: 2}}
          none: {host: h}
        """,
    )
    once = ["-o", "NumberOfPasswordPrompts=1"]
    assert cfg.ssh_args(cfg.get("pw")) == once
    assert cfg.ssh_args(cfg.get("pp")) == once
    assert cfg.ssh_args(cfg.get("own")) == ["-o", "numberofpasswordprompts=2"]
    assert cfg.ssh_args(cfg.get("none")) == []


def test_lookup(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, "connections: {web: {host: h}, bad: {host: h, port: 0}}\n")
    assert cfg.lookup("web") is cfg.get("web")
    assert cfg.lookup("user@elsewhere") is None
    with pytest.raises(ConfigError, match=r"connections\.bad\.port: must be between 1 and 65535"):
        cfg.lookup("bad")
    # A file refused as a whole still knows its names: they are config errors, not destinations.
    cfg = load_config_text(tmp_path, "connections: {pw: {host: h, password: x}}\n", mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        cfg.lookup("pw")
    assert cfg.lookup("other.example.com") is None


def test_config_list_merges_ssh_config_aliases(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          web: {host: 10.0.0.5, user: deploy, port: 2222, password: s3cret, description: Web, info_file: w.md}
          db: {host: db, port: x}
        """,
    )
    listing = config_list(cfg, ["web", "db", "gw", "lab"])
    assert [(e.name, e.source) for e in listing.configs] == [
        ("web", "config"),
        ("gw", "ssh_config"),
        ("lab", "ssh_config"),
    ]
    web = listing.configs[0]
    assert (web.host, web.user, web.port, web.description, web.has_info) == (
        "10.0.0.5",
        "deploy",
        2222,
        "Web",
        True,
    )
    assert [(e.name, e.message) for e in listing.errors] == [("db", "connections.db.port: not an integer")]
    assert listing.hint is not None and "Broken entries" in listing.hint
    assert "s3cret" not in listing.model_dump_json()

    empty = config_list(load_config_text(tmp_path, ""), [])
    assert empty.configs == [] and empty.hint is not None and "No connections configured" in empty.hint
