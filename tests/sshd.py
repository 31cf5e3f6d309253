"""A real OpenSSH server on 127.0.0.1 for integration tests, and the local users it serves.

`start_sshd(workdir)` generates a temporary host key and client key, writes an sshd_config that
listens on a free loopback port and starts `/usr/sbin/sshd -D`. Every account shares one
authorized_keys file holding the client key, so the same key logs in as any test user.

The test users (one per login shell under test, plus one for password logins) are system
accounts created once per machine, idempotently; that needs root. The password user gets a
fresh random password whenever no other test run on the machine is using it (see
`_password_for_run`), so concurrent runs never change each other's password.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "PASSWORD_USER",
    "SHELL_USERS",
    "SUDOERS_FILE",
    "SshServer",
    "SshdUnavailable",
    "environment_problem",
    "start_sshd",
]

HOST = "127.0.0.1"
# shell kind -> login user name
SHELL_USERS: dict[str, str] = {
    "bash": "skbash",
    "zsh": "skzsh",
    "dash": "skdash",
    "ash": "skash",
    # Not a POSIX shell (like a router CLI): the Python REPL, for the unintegrated fallback.
    "python": "skpy",
}
PASSWORD_USER = "skpass"
# sudo for the password user, asking its password (tests of typing secrets into sudo's prompt).
SUDOERS_FILE = Path("/etc/sudoers.d/sshkeep-test")
SUDOERS_RULE = f"""\
# Written by sshkeep's test suite (tests/sshd.py): sudo asks {PASSWORD_USER}'s password, every time.
Defaults:{PASSWORD_USER} lecture=never, timestamp_timeout=5, !use_pty
{PASSWORD_USER} ALL=(root) /usr/bin/id, /usr/bin/true
"""
# Machine-wide state of the test users: the busybox `ash` link, locks, the current password.
STATE_DIR = Path("/usr/local/lib/sshkeep-test")
START_TIMEOUT = 15.0
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
_REQUIRED_TOOLS = ("ssh", "ssh-keygen", "tmux", "bash", "zsh", "dash", "busybox")
_ACCOUNT_TOOLS = ("useradd", "usermod", "chpasswd")


class SshdUnavailable(RuntimeError):
    """The test sshd could not be started."""


def _which(name: str, *, sbin: bool = False) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    if sbin:
        path = f"{path}:{_SBIN_PATH}"
    return shutil.which(name, path=path)


def _need(name: str, *, sbin: bool = False) -> str:
    found = _which(name, sbin=sbin)
    if found is None:
        raise SshdUnavailable(f"{name} not found in PATH")
    return os.path.abspath(found)


def environment_problem() -> str | None:
    """Why a test sshd cannot run here (not root, a missing tool), or None if it can."""
    if not os.path.isdir("/proc/self"):
        return "the sshd fixture needs Linux (/proc)"
    if os.geteuid() != 0:
        return "the sshd fixture must run as root (it creates test users and runs sshd)"
    missing = [name for name in _REQUIRED_TOOLS if _which(name) is None]
    missing += [name for name in ("sshd", *_ACCOUNT_TOOLS) if _which(name, sbin=True) is None]
    if missing:
        return "missing tools: " + ", ".join(missing) + " (bash tests/run.sh installs them)"
    if os.path.exists("/etc/nologin"):
        return "/etc/nologin exists: sshd refuses logins of non-root users"
    return None


# --- processes ----------------------------------------------------------------------------------


def _run(args: list[str], *, input_text: str | None = None, timeout: float = 30.0) -> str:
    """Run a short command; raise SshdUnavailable with its output if it fails."""
    try:
        done = subprocess.run(
            args,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SshdUnavailable(f"{args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        # `input_text` may hold a password: never echo it.
        raise SshdUnavailable(
            f"{' '.join(args)} exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def die_with_parent() -> None:
    """preexec_fn: SIGTERM the child if the test process dies, so no sshd outlives a killed run."""
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def descendants(root: int) -> list[int]:
    """Pids of every live descendant of `root` (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


# --- users ----------------------------------------------------------------------------------------


def _read_shadow_field(user: str) -> str | None:
    for line in Path("/etc/shadow").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == user and len(parts) > 1:
            return parts[1]
    return None


def _ensure_user(name: str, shell: str) -> None:
    home = Path("/home") / name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--system", "--create-home", "--home-dir", str(home), "--shell", shell, name])
        entry = pwd.getpwnam(name)
    if entry.pw_shell != shell:
        _run(["usermod", "--shell", shell, name])
    if entry.pw_dir != str(home):
        _run(["usermod", "--home", str(home), name])
    if not home.is_dir():
        home.mkdir(mode=0o755, parents=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    # With UsePAM no, sshd refuses even key logins when the shadow field starts with "!" (locked),
    # which is what useradd leaves. "*" means "no password works" without locking the account.
    shadow = _read_shadow_field(name)
    if shadow is None or shadow == "" or shadow.startswith("!"):
        _run(["usermod", "--password", "*", name])
    if shell.endswith("/zsh"):
        zshrc = home / ".zshrc"
        if not zshrc.exists():  # otherwise zsh-newuser-install prompts on the first login
            zshrc.touch(mode=0o644)
            os.chown(zshrc, entry.pw_uid, entry.pw_gid)


def _shells() -> dict[str, str]:
    """shell kind -> login shell path. busybox runs the applet named by argv[0], hence the link."""
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    STATE_DIR.chmod(0o755)
    busybox = os.path.realpath(_need("busybox"))
    ash = STATE_DIR / "ash"
    if not (ash.is_symlink() and os.readlink(ash) == busybox):
        tmp = STATE_DIR / f"ash.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(busybox)
        tmp.replace(ash)
    return {
        "bash": _need("bash"),
        "zsh": _need("zsh"),
        "dash": _need("dash"),
        "ash": str(ash),
        "python": "/usr/bin/python3",
    }


def _ensure_users() -> None:
    """Create (or repair) every test user. Serialised between concurrent test runs."""
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(STATE_DIR / "setup.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shells = _shells()
        for kind, user in SHELL_USERS.items():
            _ensure_user(user, shells[kind])
        _ensure_user(PASSWORD_USER, shells["bash"])
        _ensure_sudoers()


def _ensure_sudoers() -> None:
    """Install the password user's sudo rule (when sudo is installed), checked by visudo first."""
    visudo = _which("visudo", sbin=True)
    if _which("sudo") is None or visudo is None or not SUDOERS_FILE.parent.is_dir():
        return
    try:
        if SUDOERS_FILE.read_text() == SUDOERS_RULE:
            return
    except OSError:
        pass
    tmp = SUDOERS_FILE.parent / f".sshkeep-test.{os.getpid()}"  # sudo skips names with a dot
    tmp.write_text(SUDOERS_RULE)
    tmp.chmod(0o440)
    try:
        _run([visudo, "-c", "-q", "-f", str(tmp)])
        tmp.replace(SUDOERS_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def _password_for_run() -> tuple[str, IO[str]]:
    """The password of PASSWORD_USER for this run, and a lock to hold while the run lasts.

    Every run holds a shared lock on `active.lock` until `stop()`. A run that finds no other
    holder sets a new random password (through chpasswd's stdin, never argv); a run that starts
    while others are active reuses theirs, so nobody's password changes under them.
    """
    lock = open(STATE_DIR / "active.lock", "a")  # noqa: SIM115 - held until SshServer.stop()
    secret = STATE_DIR / "password"
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another run is active: keep its password
        else:
            password = secrets.token_urlsafe(24)
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(password)
            _run(["chpasswd"], input_text=f"{PASSWORD_USER}:{password}\n")
        # Converting to shared is not atomic: another run may rotate in between, so the password
        # is read only once the shared lock is held and no rotation can happen any more.
        fcntl.flock(lock, fcntl.LOCK_SH)
        password = secret.read_text().strip()
        if not password:
            raise SshdUnavailable(f"{secret} is empty")
    except BaseException:
        lock.close()
        raise
    return password, lock


# --- server ---------------------------------------------------------------------------------------


@dataclass
class SshServer:
    """A running test sshd and what a client needs to reach it."""

    port: int
    client_key: Path
    known_hosts: Path
    host_key_fingerprint: str
    users: dict[str, str]
    password_user: str
    password: str = field(repr=False)
    log_file: Path
    host_key: Path  # the private host key, for a second sshd of the same host (tests/delayed.py)
    host: str = HOST
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False)
    _lock: IO[str] | None = field(default=None, repr=False)

    def ssh_options(self, *, password: bool = False) -> dict[str, str]:
        """`-o` options that pin this server's host key; key auth only unless `password`."""
        options = {
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "IdentitiesOnly": "yes",
            "ConnectTimeout": "10",
        }
        if password:
            options |= {"PubkeyAuthentication": "no", "PreferredAuthentications": "password"}
        else:
            options |= {"PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no"}
        return options

    def connection(self, shell: str) -> dict[str, object]:
        """A config.yml `connections:` entry logging in by key as the user whose shell is `shell`."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.users[shell],
            "key_path": str(self.client_key),
            "ssh_options": self.ssh_options(),
        }

    def password_connection(self) -> dict[str, object]:
        """A config.yml entry logging in as `password_user` (bash) with its password."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.password_user,
            "password": self.password,
            "ssh_options": self.ssh_options(password=True),
        }

    def log(self) -> str:
        """sshd's log so far (LogLevel VERBOSE), for assertion messages."""
        return _read(self.log_file)

    def stop(self) -> None:
        """Stop sshd and every session it spawned; remove the shared authorized_keys dir."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            # Connection handlers call setsid(), so a process group kill would miss them.
            pids = descendants(proc.pid)
            proc.terminate()
            signal_all(pids, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (proc.poll() is None or any(_alive(pid) for pid in pids)):
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            signal_all([pid for pid in pids if _alive(pid)], signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.process = None
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def banner_ok(port: int, host: str = HOST) -> bool:
    """True once something on `host`:`port` speaks SSH (a bare accept is not enough)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(5)  # an inetd-style `sshd -i` on a loaded machine may take a while
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _sshd_config(workdir: Path, port: int, host_key: Path, authorized_keys: Path) -> str:
    return f"""\
ListenAddress {HOST}
Port {port}
HostKey {host_key}
PidFile {workdir / "sshd.pid"}
AuthorizedKeysFile {authorized_keys}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication yes
PermitEmptyPasswords no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin yes
MaxAuthTries 10
MaxSessions 100
MaxStartups 100:30:200
LoginGraceTime 30
PrintMotd no
PrintLastLog no
X11Forwarding no
Subsystem sftp internal-sftp
# Side commands carry what the client's SetEnv/SendEnv name (tests/integration/test_side_commands.py).
AcceptEnv LC_SKTEST
LogLevel VERBOSE
"""


def _start_once(
    workdir: Path, sshd: str, port: int, host_key: Path, authorized_keys: Path
) -> tuple[subprocess.Popen[bytes] | None, str]:
    """Start sshd on `port`; return the process once it serves SSH, or None and the reason."""
    config = workdir / f"sshd_config.{port}"
    config.write_text(_sshd_config(workdir, port, host_key, authorized_keys))
    log = workdir / "sshd.log"
    # Validate first: a bad config otherwise shows up only as a timeout.
    test = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    if test.returncode != 0:
        raise SshdUnavailable(f"sshd -t rejected {config}:\n{test.stderr}")
    with open(workdir / "sshd.stderr", "ab") as stderr:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-E", str(log), "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None, f"sshd exited with {proc.returncode}"
        if banner_ok(port):
            return proc, ""
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return None, f"sshd did not accept connections on {HOST}:{port} within {START_TIMEOUT:.0f}s"


def start_sshd(workdir: Path) -> SshServer:
    """Create the test users if needed and start an sshd for them on a free loopback port."""
    problem = environment_problem()
    if problem is not None:
        raise SshdUnavailable(problem)
    sshd = _need("sshd", sbin=True)  # sshd refuses to start unless run by absolute path
    keygen = _need("ssh-keygen")
    workdir.mkdir(parents=True, exist_ok=True)
    _ensure_users()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory

    host_key = workdir / "host_ed25519"
    client_key = workdir / "client_ed25519"
    for key, comment in ((host_key, "sshkeep-test-host"), (client_key, "sshkeep-test-client")):
        for stale in (key, key.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        key.chmod(0o600)
    fingerprint = _run([keygen, "-l", "-E", "sha256", "-f", f"{host_key}.pub"]).split()[1]

    # sshd reads authorized_keys as the target user, and pytest's tmp dirs are root-only (0700):
    # so the shared file lives in its own world-readable directory.
    keys_dir = Path(tempfile.mkdtemp(prefix="sshkeep-test-keys-"))
    keys_dir.chmod(0o755)
    authorized_keys = keys_dir / "authorized_keys"
    authorized_keys.write_text(Path(f"{client_key}.pub").read_text())
    authorized_keys.chmod(0o644)

    password, lock = _password_for_run()
    try:
        reasons: list[str] = []
        for _attempt in range(5):  # the free port may be taken before sshd binds it
            port = _free_port()
            proc, reason = _start_once(workdir, sshd, port, host_key, authorized_keys)
            if proc is not None:
                break
            reasons.append(reason)
        else:
            log = _read(workdir / "sshd.log") + _read(workdir / "sshd.stderr")
            raise SshdUnavailable(
                "could not start sshd: " + "; ".join(reasons) + f"\n--- sshd log ---\n{log}"
            )
    except BaseException:
        lock.close()
        shutil.rmtree(keys_dir, ignore_errors=True)
        raise

    host_pub = Path(f"{host_key}.pub").read_text().split()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_pub[0]} {host_pub[1]}\n")
    return SshServer(
        port=port,
        client_key=client_key,
        known_hosts=known_hosts,
        host_key_fingerprint=fingerprint,
        users=dict(SHELL_USERS),
        password_user=PASSWORD_USER,
        password=password,
        log_file=workdir / "sshd.log",
        host_key=host_key,
        process=proc,
        _cleanup=[keys_dir],
        _lock=lock,
    )
