"""sshkeep: persistent, interactive SSH terminals for AI agents (MCP) and people.

The repository's `common/`, `daemon/` and `shim/` folders are installed as `sshkeep.common`,
`sshkeep.daemon` and `sshkeep.shim`; this file becomes `sshkeep/__init__.py` in the wheel and is
the one place the version is written.
"""

__version__ = "0.2.0"
