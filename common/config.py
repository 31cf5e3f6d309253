"""Loading and validating `config.yml`: the named ssh connections agents may open.

The file accepts the mcp-ssh-interactive schema as is (a top-level `connections:` mapping of
name → entry). One bad entry does not hide the others: it lands in `LoadedConfig.errors` with a
message naming the entry and field. Whole-file problems (YAML syntax, wrong shape, a password in a
file others can read) land in `LoadedConfig.file_error`. Secrets are `SecretStr` and never appear in
a message or a repr.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sshkeep.common.errors import ConfigError, ConnectionNotFound
from sshkeep.common.settings import Settings

__all__ = [
    "LOGIN_SECRET",
    "ConfigSource",
    "Connection",
    "LoadedConfig",
    "SecretSpec",
    "load_config",
    "resolve_info_path",
    "ssh_config_aliases",
]

MAX_CONFIG_BYTES = 1024 * 1024
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_OPTION_NAME_RE = re.compile(r"[A-Za-z0-9]+")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_LEVEL_KEYS = ("connections", "settings", "secrets")
# The name under which a connection's `password` is offered as a secret inside the session.
LOGIN_SECRET = "login"
MAX_SECRET_CHARS = 4096
_SECRET_FIELDS = frozenset({"password", "key_passphrase"})
_PORT_RANGE = "must be between 1 and 65535"


# --- field checks -----------------------------------------------------------------------------------


def _has_control(value: str) -> bool:
    return any(not c.isprintable() for c in value)


def _check_token(value: str) -> str:
    """A single ssh argument: non-empty, not an option, no whitespace or control characters."""
    if not value:
        raise ValueError("must not be empty")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    if any(c.isspace() for c in value) or _has_control(value):
        raise ValueError("must not contain whitespace")
    return value


def _check_path(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if _has_control(value):
        raise ValueError("must not contain control characters")
    return value


def _check_option_name(value: str) -> str:
    if not _OPTION_NAME_RE.fullmatch(value):
        raise ValueError("not an ssh option name (letters and digits only)")
    return value


def _option_value(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return value


def _check_option_value(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if _has_control(value):
        raise ValueError("must not contain control characters")
    return value


Token = Annotated[str, AfterValidator(_check_token)]
PathStr = Annotated[str, AfterValidator(_check_path)]
OptionName = Annotated[str, AfterValidator(_check_option_name)]
OptionValue = Annotated[str, BeforeValidator(_option_value), AfterValidator(_check_option_value)]


def _secret_shorthand(value: object) -> object:
    """`name: text` is `name: {value: text}`; numbers are text too (a PIN)."""
    if isinstance(value, bool):
        raise ValueError("not a secret value (a string, or a mapping with `value` or `command`)")
    if isinstance(value, str | int):
        return {"value": str(value)}
    return value


class SecretSpec(BaseModel):
    """One named secret: a value, or a credential command whose stdout is the value.

    `command` runs without a shell (its words split like a shell would, `shlex.split`), with
    `timeout` seconds; its result is kept in memory for `cache_seconds` (0: asked every time).
    `prompt` is a regular expression: a pending question whose text matches it counts as a
    secret question, and this secret is the one that answers it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: SecretStr | None = None
    command: str | None = None
    timeout: float = Field(default=5.0, gt=0, le=120)
    cache_seconds: float = Field(default=0.0, ge=0, le=30 * 86400)
    prompt: str | None = None

    @field_validator("value")
    @classmethod
    def _value_ok(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        if not text:
            raise ValueError("must not be empty")
        if len(text) > MAX_SECRET_CHARS:
            raise ValueError(f"longer than {MAX_SECRET_CHARS} characters")
        if any(c in "\r\n\x00" for c in text):
            raise ValueError("must not contain a line break or NUL (it is typed as one line)")
        return value

    @field_validator("command")
    @classmethod
    def _command_ok(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into words: {exc}") from exc
        if not words:
            raise ValueError("must not be empty")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_ok(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SecretSpec:
        if (self.value is None) == (self.command is None):
            raise ValueError("give exactly one of `value` and `command`")
        return self

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command) if self.command else []

    def matches(self, question_text: str) -> bool:
        return self.prompt is not None and re.search(self.prompt, question_text) is not None


SecretField = Annotated[SecretSpec, BeforeValidator(_secret_shorthand)]
SecretName = Annotated[str, AfterValidator(lambda v: _check_secret_name(v))]


def _check_secret_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError("invalid secret name (use letters, digits, '_', '.', '-')")
    return value


def _check_rule(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a rule must not be empty")
    if len(value) > 1000:
        raise ValueError("a rule is longer than 1000 characters")
    if _has_control(value):
        raise ValueError("a rule must not contain control characters")
    if value.startswith("path:") and not value[5:].strip():
        raise ValueError("a path: rule needs a path or glob after 'path:'")
    return value


# An allow/deny/ask rule: a command name, a glob over the command's words, or `path:GLOB`.
Rule = Annotated[str, AfterValidator(_check_rule)]


class Connection(BaseModel):
    """One named entry of `connections:`; immutable, so reloads can share unchanged ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: Token
    user: Token | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    key_path: PathStr | None = None
    password: SecretStr | None = None
    key_passphrase: SecretStr | None = None
    description: str = ""
    info_file: PathStr | None = None
    ssh_options: dict[OptionName, OptionValue] = Field(default_factory=dict)
    proxy_jump: Token | None = None
    secrets: dict[SecretName, SecretField] = Field(default_factory=dict)
    # Which secret answers a `[sudo] password for <user>:` prompt: a secret name, or false (none).
    # Default: `login` (the password) when the prompt's user is this entry's user.
    sudo: str | bool | None = None
    # Whether `password` is offered inside the session as the secret `login`.
    login_secret: bool = True

    @field_validator("sudo")
    @classmethod
    def _sudo_ok(cls, value: str | bool | None) -> str | bool | None:
        if value is True:
            raise ValueError("a secret name, or false")
        if isinstance(value, str):
            _check_secret_name(value)
        return value

    # Guard rails: what runs without asking (None: the `settings.policy` default) and rules.
    policy: Literal["admin", "operator", "read_only"] | None = None
    allow: list[Rule] = Field(default_factory=list)
    deny: list[Rule] = Field(default_factory=list)
    ask: list[Rule] = Field(default_factory=list)

    @field_validator("port", mode="before")
    @classmethod
    def _port_not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("not an integer")
        return value

    @property
    def key_file(self) -> Path | None:
        """`key_path` with `~` expanded, or None."""
        return Path(os.path.expanduser(self.key_path)) if self.key_path else None

    @property
    def has_secret(self) -> bool:
        return self.password is not None or self.key_passphrase is not None

    def ssh_args(self, proxy_command: str | None = None) -> list[str]:
        """ssh argv pieces that go before the destination (never a secret).

        `proxy_command` replaces `-J proxy_jump` (see `LoadedConfig.ssh_args`: a jump host that is
        itself an entry carries its own user, port, key and options, which `-J` would drop).
        """
        args: list[str] = []
        if self.user:
            args += ["-l", self.user]
        if self.port is not None:
            args += ["-p", str(self.port)]
        if self.key_file is not None:
            args += ["-i", str(self.key_file)]
        if proxy_command is not None:
            args += ["-o", f"ProxyCommand={proxy_command}"]
        elif self.proxy_jump:
            args += ["-J", self.proxy_jump]
        for key, value in self.ssh_options.items():
            args += ["-o", f"{key}={value}"]
        return args

    def has_option(self, name: str) -> bool:
        """Whether `ssh_options` sets `name` (ssh option names are case-insensitive)."""
        return any(key.lower() == name.lower() for key in self.ssh_options)

    def own_secrets(self) -> dict[str, SecretSpec]:
        """This entry's named secrets, `login` (its password) included unless turned off."""
        out: dict[str, SecretSpec] = {}
        if self.password is not None and self.login_secret:
            out[LOGIN_SECRET] = SecretSpec(value=self.password)
        out.update(self.secrets)
        return out


# --- loaded result ----------------------------------------------------------------------------------


@dataclass
class LoadedConfig:
    """The outcome of reading config.yml once: valid entries, per-entry errors, file error."""

    path: Path
    connections: dict[str, Connection] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    file_error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    # Every entry name the file holds, also when a file error keeps them all from being used.
    names: set[str] = field(default_factory=set)
    # Top-level `secrets:` (offered in every session), and the broken ones by `secrets.<name>`.
    secrets: dict[str, SecretSpec] = field(default_factory=dict)
    secret_errors: dict[str, str] = field(default_factory=dict)
    # Environment variables that secret fields refer to: kept out of every child's environment.
    secret_vars: set[str] = field(default_factory=set)

    def secrets_for(self, conn: Connection | None) -> dict[str, SecretSpec]:
        """The secrets a session of `conn` may use: the global ones, then the entry's own."""
        out = dict(self.secrets)
        if conn is not None:
            out.update(conn.own_secrets())
        return out

    @property
    def info_dir(self) -> Path:
        return self.path.parent / "info"

    @cached_property
    def tunables(self) -> Settings:
        """`settings:` parsed and bounded (once per load of the file)."""
        return Settings.parse(self.settings)

    def lookup(self, name: str) -> Connection | None:
        """The entry `name`, or None when the file has no such entry (then it is an ssh destination).

        An entry that exists but cannot be used raises ConfigError naming entry and field.
        """
        conn = self.connections.get(name)
        if conn is not None:
            return conn
        if name in self.errors:
            raise ConfigError(self.errors[name])
        if name in self.names and self.file_error is not None:
            raise ConfigError(self.file_error)
        return None

    def jump_chain(self, conn: Connection) -> list[Connection]:
        """The entries `conn` jumps through, nearest first (a proxy_jump that is no entry ends it)."""
        chain: list[Connection] = []
        seen = [conn.name]
        current = conn
        while current.proxy_jump is not None:
            jump = self.lookup(current.proxy_jump)
            if jump is None:
                break
            if jump.name in seen:
                raise ConfigError(
                    f"connections.{current.name}.proxy_jump: jump hosts loop "
                    f"({' -> '.join([*seen, jump.name])})",
                    hint="Make the chain of proxy_jump entries end at a host reached directly.",
                )
            seen.append(jump.name)
            chain.append(jump)
            current = jump
        return chain

    def ssh_args(self, conn: Connection) -> list[str]:
        """ssh argv pieces for `conn`, its jump hosts resolved.

        A `proxy_jump` naming another entry becomes a ProxyCommand running ssh with that entry's
        user, port, key and ssh_options (ssh's own -J would pass none of them on). A configured
        secret adds NumberOfPasswordPrompts=1: a wrong one fails once instead of being retried.
        """
        chain = self.jump_chain(conn)
        proxy: str | None = None
        for jump in reversed(chain):
            argv = ["ssh", *jump.ssh_args(proxy), *_secret_options(jump), "-W", "[%h]:%p", "--", jump.host]
            # ssh %-expands ProxyCommand: only our own -W target is meant to be expanded.
            words = [a if a == "[%h]:%p" else a.replace("%", "%%") for a in argv]
            # ssh runs it as `sh -c "exec <command>"`; the variable tells askpass which hop asks.
            proxy = f"env SSHKEEP_ASKPASS_HOP={jump.name} " + " ".join(shlex.quote(w) for w in words)
        return [*conn.ssh_args(proxy), *_secret_options(conn)]

    def get(self, name: str) -> Connection:
        """The valid entry `name`; ConfigError if it (or the file) is invalid, else ConnectionNotFound."""
        conn = self.connections.get(name)
        if conn is not None:
            return conn
        if name in self.errors:
            raise ConfigError(self.errors[name])
        if self.file_error is not None:
            raise ConfigError(self.file_error)
        known = ", ".join(sorted(self.connections)) or "none configured"
        raise ConnectionNotFound(f"no connection named {name!r} in {self.path} (known: {known})")


def _secret_options(conn: Connection) -> list[str]:
    if conn.has_secret and not conn.has_option("NumberOfPasswordPrompts"):
        return ["-o", "NumberOfPasswordPrompts=1"]
    return []


# --- YAML ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: the constructor reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    # Never str(exc): it quotes the offending line, which may hold a password.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        msg = f"{path}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}"
        msg += f": {exc.problem}" if exc.problem else ""
        if exc.context and exc.context_mark is not None:
            msg += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return msg
    return f"{path}: YAML syntax error"


# --- expansion and validation ------------------------------------------------------------------------


def _expand(value: Any, env: Mapping[str, str], loc: str, missing: dict[str, str]) -> Any:
    """Expand `${NAME}` in every string below `value`; undefined names are recorded in `missing`."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var in env:
                return env[var]
            missing.setdefault(loc, f"{loc}: environment variable {var} is not set")
            return match.group(0)

        return _VAR_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{loc}.{k}", missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{loc}[{i}]", missing) for i, v in enumerate(value)]
    return value


_TYPE_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_parsing": "not an integer",
    "int_type": "not an integer",
    "int_from_float": "not an integer",
    "string_type": "not a string",
    "dict_type": "not a mapping",
    "greater_than": _PORT_RANGE,
    "greater_than_equal": _PORT_RANGE,
    "less_than": _PORT_RANGE,
    "less_than_equal": _PORT_RANGE,
    "string_too_short": "must not be empty",
    "string_too_long": "too long",
}


def _describe(err: Mapping[str, Any], secret: bool) -> str:
    kind = str(err["type"])
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", "invalid value"))
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    # pydantic's messages do not quote the input, but say nothing at all about a secret's value.
    return "invalid value" if secret else str(err["msg"])


def _validate_entry(name: str, raw: Any, env: Mapping[str, str]) -> Connection | str:
    """Build one Connection, or return the error message for the entry."""
    loc = f"connections.{name}"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return f"{loc}: not a mapping"
    if "name" in raw:
        return f"{loc}.name: unknown field (the entry's key is its name)"
    missing: dict[str, str] = {}
    data = {str(k): _expand(v, env, f"{loc}.{k}", missing) for k, v in raw.items()}
    messages = list(missing.values())
    try:
        conn = Connection.model_validate({"name": name, **data})
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            parts = [str(p) for p in err["loc"] if p != "[key]"]
            where = ".".join([loc, *parts])
            if any(where == m or where.startswith(m + ".") for m in missing):
                continue  # already reported as an undefined variable
            secret = bool(parts) and parts[0] in (*_SECRET_FIELDS, "secrets")
            messages.append(f"{where}: {_describe(err, secret)}")
        return "; ".join(messages) or f"{loc}: invalid entry"
    return "; ".join(messages) if messages else conn


def _secret_values(raw: Any) -> list[Any]:
    """The values (not commands) a `secrets:` mapping holds, as written."""
    if not isinstance(raw, dict):
        return []
    out: list[Any] = []
    for spec in raw.values():
        if isinstance(spec, str | int) and not isinstance(spec, bool):
            out.append(spec)
        elif isinstance(spec, dict) and spec.get("value") is not None:
            out.append(spec["value"])
    return out


def _holds_secret(entries: Mapping[Any, Any], global_secrets: Any = None) -> bool:
    if _secret_values(global_secrets):
        return True
    return any(
        isinstance(raw, dict)
        and (any(raw.get(k) is not None for k in _SECRET_FIELDS) or bool(_secret_values(raw.get("secrets"))))
        for raw in entries.values()
    )


def _secret_vars(entries: Mapping[Any, Any], global_secrets: Any) -> set[str]:
    """Names of the environment variables that secret values refer to (`${VAR}`)."""
    values: list[Any] = list(_secret_values(global_secrets))
    for raw in entries.values():
        if isinstance(raw, dict):
            values += [raw.get(k) for k in _SECRET_FIELDS]
            values += _secret_values(raw.get("secrets"))
    return {m.group(1) for v in values if isinstance(v, str) for m in _VAR_RE.finditer(v)}


def _validate_secret(name: str, raw: Any, env: Mapping[str, str]) -> SecretSpec | str:
    """One top-level secret, or the error message for it (never quoting its value)."""
    loc = f"secrets.{name}"
    if not NAME_RE.fullmatch(name):
        return f"{loc}: invalid secret name (use letters, digits, '_', '.', '-')"
    missing: dict[str, str] = {}
    data = _expand(raw, env, loc, missing)
    if missing:
        return "; ".join(missing.values())
    try:
        return SecretSpec.model_validate(_secret_shorthand(data))
    except (ValidationError, ValueError) as exc:
        if not isinstance(exc, ValidationError):
            return f"{loc}: {exc}"
        messages = []
        for err in exc.errors(include_url=False, include_input=False):
            parts = [str(p) for p in err["loc"]]
            where = ".".join([loc, *parts])
            messages.append(f"{where}: {_describe(err, True)}")
        return "; ".join(messages) or f"{loc}: invalid secret"


def _permission_error(path: Path, mode: int, what: str = "a password") -> str | None:
    if mode & 0o044:
        return f"{path} holds {what} and is readable by others; run: chmod 600 {path}"
    if mode & 0o022:
        return f"{path} holds {what} and is writable by others; run: chmod 600 {path}"
    return None


def _read(path: Path) -> tuple[bytes | None, int, str | None]:
    """(content or None when missing, st_mode, file error)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, 0, f"{path}: not a regular file"
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None, 0, None
    except IsADirectoryError:
        return None, 0, f"{path}: not a regular file"
    except OSError as exc:
        return None, 0, f"{path}: cannot read: {exc.strerror or exc}"
    if len(data) > MAX_CONFIG_BYTES:
        return None, 0, f"{path}: larger than {MAX_CONFIG_BYTES} bytes"
    return data, st.st_mode, None


def load_config(path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate config.yml; never raises for a bad file (see `file_error`/`errors`)."""
    env = os.environ if env is None else env
    result = LoadedConfig(path=path)
    data, mode, error = _read(path)
    if error is not None or data is None:
        result.file_error = error
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.file_error = f"{path}: not UTF-8 text (byte {exc.start})"
        return result
    try:
        doc = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        result.file_error = _yaml_error(path, exc)
        return result
    if doc is None:
        return result
    if not isinstance(doc, dict):
        result.file_error = f"{path}: the top level must be a mapping with a 'connections' key"
        return result
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            result.file_error = (
                f"{path}: unknown top-level key {str(key)!r} "
                "(expected 'connections', 'settings' or 'secrets')"
            )
            return result
    settings = doc.get("settings")
    if settings is not None and not isinstance(settings, dict):
        result.file_error = f"{path}: settings: not a mapping"
        return result
    entries = doc.get("connections")
    if entries is None:
        entries = {}
    if not isinstance(entries, dict):
        result.file_error = f"{path}: connections: not a mapping of name to entry"
        return result
    global_secrets = doc.get("secrets")
    if global_secrets is not None and not isinstance(global_secrets, dict):
        result.file_error = f"{path}: secrets: not a mapping of name to secret"
        return result
    result.names = {str(key) for key in entries}
    result.secret_vars = _secret_vars(entries, global_secrets)
    if _holds_secret(entries, global_secrets):
        what = "a password" if _holds_secret(entries) else "a secret value"
        result.file_error = _permission_error(path, mode, what)
        if result.file_error:
            return result
    result.settings = {str(k): v for k, v in (settings or {}).items()}
    policy = result.settings.get("policy")
    if policy is not None and policy not in ("admin", "operator", "read_only"):
        # Never fall back silently: a typo here would loosen every connection without a policy.
        result.file_error = f"{path}: settings.policy: must be admin, operator or read_only (got {policy!r})"
        return result
    for key, raw in (global_secrets or {}).items():
        secret = _validate_secret(str(key), raw, env)
        if isinstance(secret, SecretSpec):
            result.secrets[str(key)] = secret
        else:
            result.secret_errors[f"secrets.{key}"] = secret
    for key, raw in entries.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            result.errors[str(key)] = f"connections.{key}: the name must be a string"
            continue
        name = str(key)
        if not NAME_RE.fullmatch(name):
            result.errors[name] = f"connections.{name}: invalid name (use letters, digits, '_', '.', '-')"
            continue
        outcome = _validate_entry(name, raw, env)
        if isinstance(outcome, Connection):
            result.connections[name] = outcome
        else:
            result.errors[name] = outcome
    return result


# --- helpers ------------------------------------------------------------------------------------------


def resolve_info_path(info_file: str, info_dir: Path) -> Path:
    """Relative → under `info_dir`; `~…` → expanded; `/…` → as is."""
    if info_file.startswith("~"):
        return Path(os.path.expanduser(info_file))
    path = Path(info_file)
    return path if path.is_absolute() else info_dir / path


def _user_home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def _config_lines(path: Path) -> list[tuple[str, list[str]]]:
    """(lowercased keyword, arguments) for each directive of an ssh_config file; [] if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*)$", line)
        if not match:
            continue
        try:
            args = shlex.split(match.group(2), comments=True)
        except ValueError:
            args = match.group(2).split()
        out.append((match.group(1).lower(), args))
    return out


def _expand_include(pattern: str, base: Path) -> list[Path]:
    if pattern == "~" or pattern.startswith("~/"):
        pattern = str(_user_home()) + pattern[1:]
    elif pattern.startswith("~"):
        pattern = os.path.expanduser(pattern)
    if not os.path.isabs(pattern):
        pattern = str(base / pattern)
    return [Path(p) for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]


def ssh_config_aliases(path: Path | None = None) -> list[str]:
    """Concrete `Host` names of ~/.ssh/config (no patterns), following `Include` one level deep."""
    if path is None:
        path = _user_home() / ".ssh" / "config"
    names: list[str] = []

    def collect(lines: list[tuple[str, list[str]]], follow: bool) -> None:
        for keyword, args in lines:
            if keyword == "host":
                names.extend(a for a in args if not any(c in a for c in "*?!"))
            elif keyword == "include" and follow:
                for arg in args:
                    for included in _expand_include(arg, path.parent):
                        collect(_config_lines(included), follow=False)

    collect(_config_lines(path), follow=True)
    return list(dict.fromkeys(names))


# --- the daemon's view --------------------------------------------------------------------------------


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return (-1, exc.errno or 0)
    # st_mode and ctime too: `chmod 600`, the fix we suggest, changes neither mtime nor size.
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)


class ConfigSource:
    """The current config, re-read whenever the file changes (checked with one stat per call)."""

    def __init__(self, path: Path, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = env
        self._lock = threading.Lock()
        self._key: tuple[int, ...] | None = None
        self._loaded: LoadedConfig | None = None

    def current(self) -> LoadedConfig:
        """The config as of now; unchanged entries keep their identical Connection objects."""
        with self._lock:
            key = _stat_key(self.path)
            if self._loaded is not None and key == self._key:
                return self._loaded
            fresh = load_config(self.path, self._env)
            if self._loaded is not None:
                old = self._loaded.connections
                for name, conn in fresh.connections.items():
                    previous = old.get(name)
                    if previous is not None and previous == conn:
                        fresh.connections[name] = previous
            self._key, self._loaded = key, fresh
            return fresh
