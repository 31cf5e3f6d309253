"""Secrets for ssh logins without argv, screen or logs: SSH_ASKPASS asks the daemon (stub)."""

from __future__ import annotations

from common.config import Connection


class AuthBroker:
    """Hands ssh the configured password/passphrase through a one-time token."""

    def env_for(self, session_id: str, conn: Connection | None) -> dict[str, str]:
        """Environment for the session's ssh process (empty when no secret is configured)."""
        return {}

    def forget(self, session_id: str) -> None:
        """Drop any token still pending for this session."""
