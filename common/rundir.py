"""Trusting the runtime dir and the daemon socket: another local user must not sit in between.

The runtime dir's last fallback (`/tmp/sshkeep-$UID`, or `/tmp/sshkeep-$UID-<hash>` for a long
SSHKEEP_HOME) is a name anyone can guess, and /tmp lets anyone create it first, with a socket of
their own inside. So:

- the daemon creates its runtime dir with one `mkdir(0700)`; a dir that already exists must be a
  real directory (not a symlink) owned by us, and only then is it made 0700; one made by someone
  else is never touched. When the predictable dir is taken, the daemon makes an unpredictable one
  (`mkdtemp`) and records its name in the state dir (which only we can write), so clients find it;
- every client checks, before it sends anything, that the socket's dir is ours and writable by
  nobody else, that the socket is ours, and that the process serving it runs as our uid
  (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS/BSD).

Standard library only: the SSH_ASKPASS helper imports it while ssh waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

RECORD_NAME = "runtime-dir"  # in the state dir: the unpredictable runtime dir the daemon chose


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def dir_problem(path: Path, strict: bool = True) -> str | None:
    """Why `path` is not a safe private dir of ours, or None when it is.

    `strict` (the daemon's view) also wants mode 0700; clients accept any mode that lets nobody
    else create entries (a socket unit's 0755 dir is safe to connect through)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink (owned by {_owner(st.st_uid)}), not a directory"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if st.st_uid != os.getuid():
        return f"{path} belongs to {_owner(st.st_uid)}, not to you ({_owner(os.getuid())})"
    loose = st.st_mode & (0o077 if strict else 0o022)
    if loose:
        return f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: others may create files in it"
    return None


def make_private_dir(path: Path) -> str | None:
    """Create `path` with one mkdir(0700), or accept an existing dir that is ours (made 0700).

    Returns None on success, else why `path` cannot be used; a dir someone else made is never
    changed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"{path} cannot be created ({exc.strerror})"
    problem = dir_problem(path, strict=False)
    if problem is not None:
        return problem
    st = os.lstat(path)
    if st.st_mode & 0o077:
        os.chmod(path, 0o700, follow_symlinks=False)  # ours (checked above): tighten it
    return None


def socket_problem(path: Path) -> str | None:
    """Why connecting to `path` could reach someone else's server (checked before connecting)."""
    if not os.path.lexists(path.parent):
        return None  # nothing there: connecting fails plainly, nobody gets our request
    problem = dir_problem(path.parent, strict=False)
    if problem is not None:
        return problem
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None  # nothing there: connecting fails plainly, nobody gets our request
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror})"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket"
    if st.st_uid != os.getuid():
        return f"socket {path} belongs to {_owner(st.st_uid)}, not to you ({_owner(os.getuid())})"
    return None


def server_uid(sock: socket.socket) -> int | None:
    """The uid of the process serving a connected Unix socket (None where the OS cannot say)."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])
    if sys.platform == "darwin" or "bsd" in sys.platform:
        # getpeereid(3) is LOCAL_PEERCRED: struct xucred {u_int cr_version; uid_t cr_uid; ...}.
        sol_local = 0
        local_peercred = getattr(socket, "LOCAL_PEERCRED", 0x001)
        raw = sock.getsockopt(sol_local, local_peercred, 76)
        return int(struct.unpack_from("=II", raw)[1])
    return None


def peer_problem(sock: socket.socket, path: Path | str) -> str | None:
    """Why the server on the other end of `sock` is not ours, or None when it runs as our uid."""
    try:
        uid = server_uid(sock)
    except OSError as exc:
        return f"cannot tell who serves {path} ({exc.strerror})"
    if uid is not None and uid != os.getuid():
        return f"the server on {path} runs as {_owner(uid)}, not as you ({_owner(os.getuid())})"
    return None


def read_record(state_dir: Path) -> Path | None:
    """The runtime dir the daemon recorded, when the record is ours and names a safe dir."""
    record = state_dir / RECORD_NAME
    try:
        st = os.lstat(record)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
        text = record.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    path = Path(text)
    if not text or not path.is_absolute() or dir_problem(path, strict=False) is not None:
        return None
    return path


def write_record(state_dir: Path, runtime_dir: Path | None) -> None:
    """Record (atomically, 0600) the runtime dir clients must use; None removes the record."""
    record = state_dir / RECORD_NAME
    if runtime_dir is None:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        return
    tmp = state_dir / f".{RECORD_NAME}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{runtime_dir}\n")
    os.replace(tmp, record)


@contextlib.contextmanager
def record_lock(state_dir: Path) -> Iterator[None]:
    """Serialise daemons choosing a runtime dir (two must not pick two dirs)."""
    fd = os.open(state_dir / f"{RECORD_NAME}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
