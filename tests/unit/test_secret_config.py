"""Named secrets in config.yml, which configured secret fits a question, and the hints (pure)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sshkeep.common.config import LOGIN_SECRET, LoadedConfig, load_config
from sshkeep.common.keyrecord import SECRET_QUESTION_KINDS as SECRET_KINDS
from sshkeep.common.models.sessions import Question
from sshkeep.common.terminal.questions import detect_question
from sshkeep.daemon.sessions.secrets import SecretStore, fingerprint
from sshkeep.daemon.sessions.session import Session

VALUE = "s3cr3t-Value-xyz"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    path.chmod(mode)
    return path


def load(tmp_path: Path, text: str, mode: int = 0o600, env: dict[str, str] | None = None) -> LoadedConfig:
    return load_config(write(tmp_path, text, mode), env or {})


def test_global_and_connection_secrets(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
secrets:
  tok: ${{TOK}}
  pin: 1234
  db: {{command: "pass show 'prod/db'", timeout: 3, cache_seconds: 60}}
connections:
  web:
    host: h
    user: deploy
    password: {VALUE}
    secrets:
      api: {{value: k, prompt: "^API token:$"}}
      tok: override
  nologin: {{host: h, password: pw, login_secret: false}}
""",
        env={"TOK": "from-env"},
    )
    assert cfg.file_error is None and cfg.errors == {} and cfg.secret_errors == {}
    assert sorted(cfg.secrets) == ["db", "pin", "tok"]
    assert cfg.secrets["tok"].value is not None and cfg.secrets["tok"].value.get_secret_value() == "from-env"
    assert cfg.secrets["pin"].value is not None and cfg.secrets["pin"].value.get_secret_value() == "1234"
    assert cfg.secrets["db"].argv == ["pass", "show", "prod/db"]
    assert (cfg.secrets["db"].timeout, cfg.secrets["db"].cache_seconds) == (3.0, 60.0)
    web = cfg.secrets_for(cfg.connections["web"])
    assert sorted(web) == ["api", "db", LOGIN_SECRET, "pin", "tok"]
    login = web[LOGIN_SECRET].value
    assert login is not None and login.get_secret_value() == VALUE
    tok = web["tok"].value
    assert tok is not None and tok.get_secret_value() == "override"  # the entry's own wins
    assert LOGIN_SECRET not in cfg.secrets_for(cfg.connections["nologin"])
    assert cfg.secret_vars == {"TOK"}
    assert VALUE not in repr(cfg)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{value: x, command: y}", "give exactly one of `value` and `command`"),
        ("{}", "give exactly one of `value` and `command`"),
        ('{command: ""}', "secrets.bad.command: must not be empty"),
        ('{command: "\'open"}', "cannot be split into words"),
        ('{value: x, prompt: "("}', "not a valid regular expression"),
        ("{value: x, timeout: 0}", "secrets.bad.timeout"),
        ("{value: x, colour: red}", "secrets.bad.colour: unknown field"),
        ("true", "not a secret value"),
        ("${NOPE}", "environment variable NOPE is not set"),
    ],
)
def test_bad_global_secrets_name_the_field(tmp_path: Path, spec: str, message: str) -> None:
    cfg = load(tmp_path, f"secrets:\n  bad: {spec}\n  good: fine\nconnections: {{}}\n")
    assert message in cfg.secret_errors["secrets.bad"], cfg.secret_errors
    assert "good" in cfg.secrets  # one bad secret does not hide the others


def test_bad_connection_secrets_break_only_their_entry(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
connections:
  a: {{host: h, secrets: {{"bad name": x}}}}
  b: {{host: h, secrets: {{x: {{value: "{VALUE}", cache_seconds: -1}}}}}}
  c: {{host: h, sudo: true}}
  d: {{host: h, sudo: db, secrets: {{db: y}}}}
""",
    )
    assert "connections.a.secrets" in cfg.errors["a"] and "invalid secret name" in cfg.errors["a"]
    assert "connections.b.secrets.x.cache_seconds" in cfg.errors["b"]
    assert VALUE not in cfg.errors["b"]
    assert cfg.errors["c"] == "connections.c.sudo: a secret name, or false"
    assert cfg.connections["d"].sudo == "db"


def test_a_file_with_secret_values_must_be_private(tmp_path: Path) -> None:
    cfg = load(tmp_path, "secrets:\n  tok: abc\nconnections: {}\n", mode=0o644)
    assert cfg.file_error is not None and "holds a secret value" in cfg.file_error
    assert "chmod 600" in cfg.file_error
    per_entry = load(tmp_path, "connections:\n  a: {host: h, secrets: {t: abc}}\n", mode=0o644)
    assert per_entry.file_error is not None and "chmod 600" in per_entry.file_error
    # A credential command holds no secret: a readable file is fine.
    commands = load(tmp_path, 'secrets:\n  db: {command: "pass show db"}\nconnections: {}\n', mode=0o644)
    assert commands.file_error is None and "db" in commands.secrets


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("API token: ", "secret"),
        ("Secret: ", "secret"),
        ("GitHub token: ", "secret"),
        ("Passcode: ", "otp"),
        ("PIN: ", "password"),
        ("[sudo] password for deploy: ", "password"),
        ("Enter key: ", "prompt"),
        ("Primary key:", "prompt"),
    ],
)
def test_secret_question_kinds(prompt: str, kind: str) -> None:
    q = detect_question(prompt)
    assert q is not None and q.kind == kind
    assert (kind in SECRET_KINDS) == (kind in {"secret", "otp", "password"})


class _Source:
    def __init__(self, cfg: LoadedConfig) -> None:
        self.cfg = cfg

    def current(self) -> LoadedConfig:
        return self.cfg


def _session(conn: str | None) -> Session:
    return Session(
        id="web-1a2b3c",
        pane_id="%1",
        target="web",
        connection=conn,
        nonce="0123456789abcdef",
        created_at=time.time(),
        log_path=Path("/nonexistent"),
        attach="tmux attach",
    )


def _store(tmp_path: Path, entry: dict[str, Any]) -> SecretStore:
    lines = "".join(f"    {k}: {v}\n" for k, v in entry.items())
    text = f"secrets:\n  vault: {{command: x, prompt: '^Vault password:$'}}\nconnections:\n  web:\n{lines}"
    return SecretStore(_Source(load(tmp_path, text)))


def test_which_secret_fits(tmp_path: Path) -> None:
    sudo = Question(kind="password", text="[sudo] password for deploy:")
    other_user = Question(kind="password", text="[sudo] password for root:")
    vault = Question(kind="password", text="Vault password:")
    token = Question(kind="secret", text="API token:")
    store = _store(tmp_path, {"host": "h", "user": "deploy", "password": "pw"})
    s = _session("web")
    assert store.fitting(s, sudo) == LOGIN_SECRET  # the password, for the same user's sudo
    assert store.fitting(s, other_user) is None
    assert store.fitting(s, vault) == "vault"  # the prompt the config marks
    assert store.fitting(s, token) is None
    assert store.is_secret(s, token) and not store.is_secret(s, Question(kind="confirm", text="[y/N]"))
    assert "name='login'" in store.hint(s, sudo)
    hint = store.hint(s, token)
    assert "`sshkeep answer web-1a2b3c`" in hint and "login, vault" in hint
    assert "pw" not in hint.replace("password", "")

    off = _store(tmp_path, {"host": "h", "user": "deploy", "password": "pw", "sudo": "false"})
    assert off.fitting(s, sudo) is None
    named = _store(tmp_path, {"host": "h", "sudo": "root_pw", "secrets": "{root_pw: x}"})
    assert named.fitting(s, other_user) == "root_pw"
    # A session not opened from config.yml still gets the global secrets.
    assert store.names(_session(None)) == ["vault"]


def test_fingerprint_is_a_short_sha256_prefix() -> None:
    assert fingerprint("abc") == "ba7816bf8f01"
