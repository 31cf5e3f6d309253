"""Unit tests for sshkeep.common.config: schema, ${VAR}, error messages, permissions, aliases, reloads."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from sshkeep.common.config import (
    ConfigSource,
    Connection,
    load_config,
    resolve_info_path,
    ssh_config_aliases,
)
from sshkeep.common.errors import ConfigError, ConnectionNotFound
from tests.support import load_config_text, write_config

SECRET = "s3cr3t-Hunter2"

FULL = """\
connections:
  web:                       # the name agents use
    host: 10.0.0.5           # or an ~/.ssh/config alias
    user: deploy
    port: 22
    key_path: ~/.ssh/id_ed25519
    password: ${WEB_PASSWORD}  # optional; ${VAR} expands from the daemon's environment
    description: Production web (read-only DB)
    info_file: web.md          # relative: under <config dir>/info/; ~ and / absolute
    ssh_options: {StrictHostKeyChecking: accept-new}   # passed as -o Key=Value
    proxy_jump: bastion        # ssh -J
  bastion:
    host: bastion.example.com
settings:
  whatever: 1
"""


# --- the schema -------------------------------------------------------------------------------------


def test_full_schema_example(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, FULL, WEB_PASSWORD=SECRET)
    assert cfg.file_error is None
    assert cfg.errors == {}
    assert list(cfg.connections) == ["web", "bastion"]
    web = cfg.get("web")
    assert web.name == "web"
    assert web.host == "10.0.0.5"
    assert web.user == "deploy"
    assert web.port == 22
    assert web.key_path == "~/.ssh/id_ed25519"
    assert web.password is not None and web.password.get_secret_value() == SECRET
    assert web.key_passphrase is None
    assert web.description == "Production web (read-only DB)"
    assert web.info_file == "web.md"
    assert web.ssh_options == {"StrictHostKeyChecking": "accept-new"}
    assert web.proxy_jump == "bastion"
    assert web.has_secret
    assert cfg.settings == {"whatever": 1}
    bastion = cfg.get("bastion")
    assert (bastion.user, bastion.port, bastion.description, bastion.has_secret) == (None, None, "", False)


def test_mcp_ssh_interactive_schema_as_is(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          my-server:
            host: 192.168.1.100
            user: username
            key_path: ~/.ssh/id_rsa
            port: 22
            description: My remote server
            info_file: my-server.md
          test-server:
            host: test.example.com
            user: demo
            password: mypassword
            port: 22
        """,
    )
    assert cfg.file_error is None and cfg.errors == {}
    assert sorted(cfg.connections) == ["my-server", "test-server"]


@pytest.mark.parametrize(
    "text", ["", "# nothing yet\n", "connections:\n", "connections: {}\n", "settings:\n"]
)
def test_empty_configs_are_fine(tmp_path: Path, text: str) -> None:
    cfg = load_config_text(tmp_path, text)
    assert (cfg.connections, cfg.errors, cfg.file_error) == ({}, {}, None)


def test_missing_file_is_fine(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope" / "config.yml", {})
    assert (cfg.connections, cfg.errors, cfg.file_error) == ({}, {}, None)
    with pytest.raises(ConnectionNotFound):
        cfg.get("web")


# --- ${VAR} -------------------------------------------------------------------------------------------


def test_env_expansion_in_any_string(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          web:
            host: ${HOST}.example.com
            user: ${USR}
            port: ${PORT}
            description: "cost $$5 and $HOME stays, ${HOST} expands"
            ssh_options: {SetEnv: "X=${HOST}"}
        """,
        HOST="web1",
        USR="deploy",
        PORT="2222",
    )
    assert cfg.errors == {}
    web = cfg.get("web")
    assert web.host == "web1.example.com"
    assert web.user == "deploy"
    assert web.port == 2222
    assert web.description == "cost $$5 and $HOME stays, web1 expands"
    assert web.ssh_options == {"SetEnv": "X=web1"}


def test_env_default_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSHKEEP_TEST_HOST", "from-environ")
    cfg = load_config(write_config(tmp_path, "connections: {a: {host: '${SSHKEEP_TEST_HOST}'}}\n"))
    assert cfg.get("a").host == "from-environ"


def test_missing_env_var_is_an_entry_error(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        """\
        connections:
          web: {host: h, password: "${WEB_PASSWORD}"}
          db: {host: db}
        """,
    )
    assert cfg.file_error is None
    assert cfg.errors == {"web": "connections.web.password: environment variable WEB_PASSWORD is not set"}
    assert list(cfg.connections) == ["db"]
    with pytest.raises(ConfigError, match="WEB_PASSWORD is not set"):
        cfg.get("web")


# --- error messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{host: h, port: abc}", "connections.web.port: not an integer"),
        ("{host: h, port: 22.5}", "connections.web.port: not an integer"),
        ("{host: h, port: true}", "connections.web.port: not an integer"),
        ("{host: h, port: 0}", "connections.web.port: must be between 1 and 65535"),
        ("{host: h, port: 70000}", "connections.web.port: must be between 1 and 65535"),
        ("{user: u}", "connections.web.host: required"),
        ("{host: h, passwd: x}", "connections.web.passwd: unknown field"),
        ("{host: 42}", "connections.web.host: not a string"),
        ("{host: h, user: [a]}", "connections.web.user: not a string"),
        ("{host: ''}", "connections.web.host: must not be empty"),
        ("{host: -oProxyCommand=x}", "connections.web.host: must not start with '-'"),
        ("{host: 'a b'}", "connections.web.host: must not contain whitespace"),
        ("{host: h, user: -x}", "connections.web.user: must not start with '-'"),
        ("{host: h, proxy_jump: 'a b'}", "connections.web.proxy_jump: must not contain whitespace"),
        ("{host: h, ssh_options: x}", "connections.web.ssh_options: not a mapping"),
        (
            "{host: h, ssh_options: {'Bad-Key': x}}",
            "connections.web.ssh_options.Bad-Key: not an ssh option name (letters and digits only)",
        ),
        ("{host: h, ssh_options: {A: 1.5}}", "connections.web.ssh_options.A: not a string"),
        ("{host: h, name: other}", "connections.web.name: unknown field (the entry's key is its name)"),
        ("[a, b]", "connections.web: not a mapping"),
        ("just-a-string", "connections.web: not a mapping"),
        ("", "connections.web.host: required"),
    ],
)
def test_entry_error_messages(tmp_path: Path, entry: str, message: str) -> None:
    cfg = load_config_text(tmp_path, f"connections:\n  web: {entry}\n  ok: {{host: fine}}\n")
    assert cfg.file_error is None
    assert cfg.errors == {"web": message}
    assert list(cfg.connections) == ["ok"], "other entries still load"
    with pytest.raises(ConfigError) as exc_info:
        cfg.get("web")
    assert exc_info.value.message == message


def test_several_errors_in_one_entry_are_joined(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, "connections:\n  web: {port: x, colour: red}\n")
    assert cfg.errors["web"] == (
        "connections.web.host: required; connections.web.port: not an integer; "
        "connections.web.colour: unknown field"
    )


def test_invalid_entry_names(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path, "connections:\n  'my web': {host: h}\n  web/1: {host: h}\n  web_1.x-y: {host: h}\n"
    )
    assert cfg.errors == {
        "my web": "connections.my web: invalid name (use letters, digits, '_', '.', '-')",
        "web/1": "connections.web/1: invalid name (use letters, digits, '_', '.', '-')",
    }
    assert list(cfg.connections) == ["web_1.x-y"]


def test_numeric_entry_name_is_a_name(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, "connections:\n  42: {host: h}\n")
    assert cfg.get("42").name == "42"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "the top level must be a mapping"),
        ("connections: {}\nhosts: {}\n", "unknown top-level key 'hosts'"),
        ("connections: [a]\n", "connections: not a mapping"),
        ("settings: 3\n", "settings: not a mapping"),
        ("connections:\n  web: {host: a}\n  web: {host: b}\n", "line 3, column 3: duplicate key 'web'"),
    ],
)
def test_file_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_config(tmp_path, text)
    cfg = load_config(path, {})
    assert cfg.file_error is not None
    assert cfg.file_error.startswith(f"{path}: ")
    assert fragment in cfg.file_error
    assert cfg.connections == {}
    with pytest.raises(ConfigError) as exc_info:
        cfg.get("web")
    assert exc_info.value.message == cfg.file_error


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "connections:\n  web:\n    host: a\n   user: [x\n")
    cfg = load_config(path, {})
    assert cfg.file_error is not None
    assert cfg.file_error.startswith(f"{path}: YAML syntax error at line 4")


def test_bad_yaml_does_not_quote_a_secret(tmp_path: Path) -> None:
    text = f'connections:\n  web:\n    host: a\n    password: "{SECRET}\n    user: b: c\n'
    cfg = load_config(write_config(tmp_path, text), {})
    assert cfg.file_error is not None and "line" in cfg.file_error
    assert SECRET not in cfg.file_error


def test_not_utf8_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"connections: {a: {host: \xff}}\n")
    assert "not UTF-8" in (load_config(path, {}).file_error or "")
    assert "not a regular file" in (load_config(tmp_path, {}).file_error or "")


# --- permissions --------------------------------------------------------------------------------------


def test_password_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f"connections:\n  web: {{host: h, password: {SECRET}}}\n  b: {{host: b}}\n", 0o644
    )
    cfg = load_config(path, {})
    assert cfg.file_error == f"{path} holds a password and is readable by others; run: chmod 600 {path}"
    assert cfg.connections == {} and cfg.errors == {}
    with pytest.raises(ConfigError, match="chmod 600"):
        cfg.get("b")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_passphrase_in_group_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    cfg = load_config_text(tmp_path, "connections: {web: {host: h, key_passphrase: pp}}\n", mode)
    assert cfg.file_error is not None and "chmod 600" in cfg.file_error


def test_password_in_private_file_is_accepted(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, f"connections: {{web: {{host: h, password: {SECRET}}}}}\n", 0o600)
    assert cfg.file_error is None
    assert cfg.get("web").has_secret


def test_world_readable_file_without_password_is_accepted(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, "connections: {web: {host: h, key_path: ~/.ssh/k}}\n", 0o644)
    assert cfg.file_error is None
    assert list(cfg.connections) == ["web"]


# --- Connection ---------------------------------------------------------------------------------------


def test_ssh_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    conn = Connection.model_validate(
        {
            "name": "web",
            "host": "10.0.0.5",
            "user": "deploy",
            "port": 2222,
            "key_path": "~/.ssh/id_ed25519",
            "password": SECRET,
            "proxy_jump": "bastion",
            "ssh_options": {
                "StrictHostKeyChecking": "accept-new",
                "Compression": True,
                "ServerAliveInterval": 30,
            },
        }
    )
    assert conn.ssh_args() == [
        "-l",
        "deploy",
        "-p",
        "2222",
        "-i",
        "/home/tester/.ssh/id_ed25519",
        "-J",
        "bastion",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "Compression=yes",
        "-o",
        "ServerAliveInterval=30",
    ]
    assert SECRET not in " ".join(conn.ssh_args())
    assert Connection(name="a", host="a").ssh_args() == []


def test_ssh_options_from_yaml_bools_and_ints(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path, "connections: {a: {host: a, ssh_options: {ForwardAgent: no, Port: 22, X11: yes}}}\n"
    )
    assert cfg.get("a").ssh_options == {"ForwardAgent": "no", "Port": "22", "X11": "yes"}


def test_connection_is_immutable() -> None:
    conn = Connection(name="a", host="a")
    with pytest.raises(ValueError, match="frozen"):
        conn.host = "b"


# --- secrets ------------------------------------------------------------------------------------------


def test_secrets_not_in_repr_or_errors(tmp_path: Path) -> None:
    cfg = load_config_text(
        tmp_path,
        f"""\
        connections:
          web: {{host: h, password: {SECRET}, key_passphrase: {SECRET}x}}
          bad: {{host: h, port: x, password: [{SECRET}]}}
          bad2: {{host: h, key_passphrase: {{nested: {SECRET}}}}}
          env: {{host: h, password: "${{PW}}", port: nope}}
        """,
        PW=SECRET,
    )
    assert list(cfg.connections) == ["web"]
    assert set(cfg.errors) == {"bad", "bad2", "env"}
    assert cfg.errors["bad"] == "connections.bad.port: not an integer; connections.bad.password: not a string"
    assert cfg.errors["bad2"] == "connections.bad2.key_passphrase: not a string"
    for text in (
        repr(cfg),
        str(cfg.get("web")),
        repr(cfg.get("web")),
        str(cfg.errors),
    ):
        assert SECRET not in text
    for name in ("bad", "bad2", "env"):
        with pytest.raises(ConfigError) as exc_info:
            cfg.get(name)
        assert SECRET not in str(exc_info.value) and SECRET not in repr(exc_info.value)


def test_get_unknown_name_lists_known_names(tmp_path: Path) -> None:
    cfg = load_config_text(tmp_path, "connections: {web: {host: a}, db: {host: b}}\n")
    with pytest.raises(ConnectionNotFound) as exc_info:
        cfg.get("wbe")
    assert "'wbe'" in exc_info.value.message
    assert "db, web" in exc_info.value.message


# --- info paths ---------------------------------------------------------------------------------------


def test_resolve_info_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    info = tmp_path / "info"
    assert resolve_info_path("web.md", info) == info / "web.md"
    assert resolve_info_path("sub/web.md", info) == info / "sub" / "web.md"
    assert resolve_info_path("~/notes/web.md", info) == Path("/home/tester/notes/web.md")
    assert resolve_info_path("/srv/web.md", info) == Path("/srv/web.md")


# --- ssh config aliases -------------------------------------------------------------------------------


def test_ssh_config_aliases(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("Host inc-a\n  User x\nInclude deeper\n")
    (tmp_path / "conf.d" / "b.conf").write_text("host inc-b inc-*\n")
    (tmp_path / "deeper").write_text("Host too-deep\n")
    (tmp_path / "extra").write_text('Host "quoted one" extra  # comment\n')
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(
            f"""\
            # a comment
            Host web db
              HostName 10.0.0.5
            Host *.example.com !bad.example.com wild? web
              User deploy
            Host=eq
            Include conf.d/*.conf
            Include {tmp_path / "extra"} missing-file
            Match host foo
              User y
            HOST  upper
            """
        )
    )
    assert ssh_config_aliases(config) == [
        "web",
        "db",
        "eq",
        "inc-a",
        "inc-b",
        "quoted one",
        "extra",
        "upper",
    ]


def test_ssh_config_aliases_missing_file(tmp_path: Path) -> None:
    assert ssh_config_aliases(tmp_path / "none") == []


def test_ssh_config_aliases_default_path_does_not_raise() -> None:
    assert isinstance(ssh_config_aliases(), list)


# --- ConfigSource -------------------------------------------------------------------------------------


def _bump(path: Path, text: str) -> None:
    """Rewrite the file and move its mtime so the change is seen even on coarse clocks."""
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_config_source_reloads_on_change_and_keeps_unchanged_entries(tmp_path: Path) -> None:
    path = write_config(tmp_path, "connections:\n  web: {host: a}\n  db: {host: b}\n")
    source = ConfigSource(path, {})
    first = source.current()
    assert source.current() is first, "unchanged file: same object"
    _bump(path, "connections:\n  web: {host: a}\n  db: {host: c}\n  new: {host: n}\n")
    second = source.current()
    assert second is not first
    assert second.get("web") is first.get("web")
    assert second.get("db") is not first.get("db")
    assert second.get("db").host == "c"
    assert second.get("new").host == "n"
    assert source.current() is second


def test_config_source_sees_creation_deletion_and_chmod(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    source = ConfigSource(path, {})
    assert source.current().connections == {}
    write_config(tmp_path, "connections: {web: {host: a, password: pw}}\n", 0o644)
    refused = source.current()
    assert refused.file_error is not None and "chmod 600" in refused.file_error
    path.chmod(0o600)
    assert source.current().get("web").host == "a"
    path.unlink()
    assert source.current().connections == {}
