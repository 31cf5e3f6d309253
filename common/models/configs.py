"""Wire models of the connection routes: configured entries, server info, the askpass exchange."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sshkeep.common.models.base import Reply, Request

ASKPASS_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,100}$"
HOP_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


class ConfigEntry(Reply):
    """One name `open_session` accepts: a config.yml entry, or a `Host` alias of ~/.ssh/config."""

    name: str
    source: Literal["config", "ssh_config"] = Field(
        description="config: an entry of sshkeep's config.yml; ssh_config: a Host alias of ~/.ssh/config"
    )
    host: str | None = Field(default=None, description="Host name or address (config entries only)")
    user: str | None = None
    port: int | None = None
    description: str = ""
    has_info: bool = Field(default=False, description="get_server_info has notes for it")
    proxy_jump: str | None = Field(default=None, description="Jump host this entry connects through")
    secrets: list[str] = Field(
        default_factory=list, description="Names of the secrets answer_secret can type in its sessions"
    )


class ConfigEntryError(Reply):
    """A config.yml entry that cannot be used, and why (the message names entry and field)."""

    name: str
    message: str


class ConfigList(Reply):
    config_file: str = Field(description="The config.yml the daemon reads (re-read when it changes)")
    configs: list[ConfigEntry]
    errors: list[ConfigEntryError] = Field(default_factory=list, description="Broken entries")
    file_error: str | None = Field(default=None, description="Why the whole file cannot be used")
    secrets: list[str] = Field(
        default_factory=list, description="Names of the global secrets (usable in every session)"
    )
    hint: str | None = None


class ServerInfo(Reply):
    """A config entry and the markdown notes of its info file."""

    name: str
    host: str
    user: str | None = None
    port: int | None = None
    description: str = ""
    info_file: str = Field(description="The info file's resolved path")
    content: str = Field(description="The info file's markdown")
    secrets: list[str] = Field(
        default_factory=list, description="Names of the secrets answer_secret can type in its sessions"
    )


class AskpassRequest(Request):
    """What sshkeep's SSH_ASKPASS helper asks the daemon (the peer process is checked too)."""

    token: str = Field(pattern=ASKPASS_TOKEN_PATTERN, description="The one-time token of this login")
    prompt: str = Field(max_length=4096, description="The prompt ssh passed to SSH_ASKPASS")
    hop: str | None = Field(
        default=None, pattern=HOP_PATTERN, description="The config entry of the jump host that asks"
    )


class AskpassReply(Reply):
    """answer: print `answer` to ssh; terminal: ask on the session's terminal; refuse: fail."""

    action: Literal["answer", "terminal", "refuse"]
    answer: str | None = None
    reason: str = ""
