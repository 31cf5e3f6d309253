"""The one mapping of side-channel failures into sshkeep's error tree, used by reads, writes and
side commands: SFTP status codes become errors naming the path, a lost ssh master becomes
`session_disconnected` or `remote_error`."""

from __future__ import annotations

import posixpath

from sshkeep.common.errors import NotFound, RemoteError, SessionDisconnected, SshkeepError
from sshkeep.daemon.files.sftp import (
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    ChannelLost,
    SftpClient,
    SftpError,
)


def file_error(exc: SftpError, path: str, action: str, target: str = "") -> SshkeepError:
    """An SFTP status as an SshkeepError that names the path."""
    where = f" on {target}" if target else ""
    if exc.code == FX_NO_SUCH_FILE:
        return NotFound(
            f"{path}: no such file or directory{where}",
            hint="Check the path (relative paths start in the remote home directory); "
            "exec_command('ls -la DIR') lists a directory.",
        )
    if exc.code == FX_PERMISSION_DENIED:
        return RemoteError(
            f"{path}: permission denied ({action}){where}",
            hint="The remote user may not do this; exec_command('ls -ld PATH') shows owner and mode.",
        )
    if exc.code == FX_OP_UNSUPPORTED:
        return RemoteError(f"{path}: the remote SFTP server does not support this ({action})")
    detail = "" if exc.message.lower() in ("failure", "") else f": {exc.message}"
    return RemoteError(f"{path}: {action} failed{where}{detail}")


def create_error(exc: SftpError, shown: str, target: str) -> SshkeepError:
    """A failed create: a missing directory gets the make_parents hint."""
    if exc.code == FX_NO_SUCH_FILE:
        directory = posixpath.dirname(target) or "."
        return NotFound(
            f"{shown}: directory {directory} does not exist",
            hint="Pass make_parents=true to create it.",
        )
    return file_error(exc, shown, "create")


async def write_error(c: SftpClient, exc: SftpError, shown: str, directory: str, need: int) -> SshkeepError:
    """A failed write: SFTP v3 says only 'Failure' for a full disk, so look at the free space."""
    if exc.code == FX_FAILURE:
        free = await c.free_bytes(directory or ".")
        if free is not None and free < max(need, 1024 * 1024):
            return RemoteError(
                f"{shown}: no space left on device ({free} bytes free, {need} to write)",
                hint="Free space on the remote filesystem, or write elsewhere.",
            )
        return RemoteError(
            f"{shown}: write failed ({exc.message}; a full disk or an exceeded quota are the usual causes)"
        )
    return file_error(exc, shown, "write")


def spawn_error(what: str, exc: OSError) -> SshkeepError:
    """The system refused what `what` (the side channel, a side command) needs: its pipes, or
    the `ssh -G` that reads what a side client of the session would send."""
    return RemoteError(f"could not set up {what}: {exc}")


def open_error(sid: str, exc: ChannelLost, master_gone: bool) -> SshkeepError:
    """The SFTP channel did not open: the master is gone, or the host has no SFTP subsystem."""
    if master_gone:
        return SessionDisconnected(
            f"session {sid} lost its ssh connection while opening the side channel: {exc}"
        )
    return RemoteError(
        f"could not open an SFTP channel over session {sid}'s connection: {exc}",
        hint="The host needs the SFTP subsystem (OpenSSH has it by default); "
        "exec_command and send_command still work.",
    )


def lost_error(sid: str, exc: ChannelLost) -> SshkeepError:
    """The SFTP channel closed under an operation (not retried, or the retry failed too)."""
    return RemoteError(
        f"the side channel of session {sid} closed during the operation: {exc}",
        hint="Retry; if the session disconnected, reconnect_session first.",
    )


def exec_error(sid: str, stderr: str, master_gone: bool) -> SshkeepError:
    """A side command could not use the session's master (ssh exited 255 saying so)."""
    if master_gone:
        return SessionDisconnected(f"session {sid} lost its ssh connection; the command did not run")
    return RemoteError(
        f"the side command could not use session {sid}'s ssh connection: {stderr.strip()[-500:]}"
    )
