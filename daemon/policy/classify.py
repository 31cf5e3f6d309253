"""Classifying a shell command line from its parse tree (pure: no I/O, no state).

The line is parsed with tree-sitter's bash grammar and every command in it is walked: pipelines,
lists, subshells, `$(…)`, backticks, process substitution, heredocs and here-strings, function
bodies, loops and conditions. Wrappers that run another command (`sudo`, `env`, `nohup`,
`timeout`, `nice`, `xargs`, `find -exec`, `watch`, …) are looked through, and strings run by a
shell (`sh -c '…'`, `bash -c`, `eval`, `su -c`, `trap`, `ssh host '…'`) are parsed in turn.
Each command gets one class:

- read: only looks (`cat`, `ls`, `grep`, `git status`, `systemctl status`)
- write: changes files or state in a recoverable way (`touch`, `cp`, `git commit`, `> file`)
- unknown: a program sshkeep knows nothing about (`./deploy.sh`, `make`)
- destructive: removes, kills, stops or overwrites (`rm`, `kill`, `reboot`, `git reset --hard`)
- privileged: runs as someone else, or runs code sshkeep cannot see: a variable or substitution
  as the command word, `eval` of a variable, an interpreter with inline code (`python -c`),
  a shell reading its commands from standard input, or a line the grammar cannot parse.

The line's class is the most severe of its commands. Redirections to files are writes.
"""

from __future__ import annotations

import codecs
import fnmatch
import functools
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import tree_sitter
import tree_sitter_bash

CommandClass = Literal["read", "write", "unknown", "destructive", "privileged"]
SEVERITY: dict[CommandClass, int] = {"read": 0, "write": 1, "unknown": 2, "destructive": 3, "privileged": 4}

MAX_DEPTH = 6  # nested `sh -c` / `eval` strings
MAX_NODES = 20_000  # parse-tree nodes walked per line, all nesting levels together
MAX_LINE_CHARS = 256 * 1024

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


@dataclass
class Part:
    """One command of the line: its words (`?` for a computed word), class and why."""

    words: list[str]
    cls: CommandClass
    reason: str
    parent: int | None = None  # index of the part that runs this one (a wrapper or `sh -c`)
    writes: list[str] = field(default_factory=list)  # literal paths it writes (redirections, tee)


@dataclass
class Classification:
    cls: CommandClass
    reason: str
    parts: list[Part]

    @property
    def writes(self) -> list[str]:
        return [p for part in self.parts for p in part.writes]


def worst(parts: list[Part]) -> Part | None:
    best: Part | None = None
    for p in parts:
        if best is None or SEVERITY[p.cls] > SEVERITY[best.cls]:
            best = p
    return best


@functools.lru_cache(maxsize=4096)
def classify(line: str) -> Classification:
    """The class of a command line and the reason, with every command found in it."""
    walker = _Walker()
    if len(line) > MAX_LINE_CHARS:
        walker.add(["?"], "privileged", f"the line is longer than {MAX_LINE_CHARS} characters", None)
    elif "\x00" in line:
        walker.add(["?"], "privileged", "the line contains a NUL byte", None)
    else:
        walker.line(line, None, 0)
    top = worst(walker.parts)
    if top is None:
        return Classification("read", "no command to run", [])
    return Classification(top.cls, f"{_show(top.words)}: {top.reason}", walker.parts)


def _show(words: list[str]) -> str:
    text = " ".join(words)
    return text if len(text) <= 80 else text[:77] + "..."


# --- literal words ----------------------------------------------------------------------------------

_GLOB = re.compile(r"[*?\[]")


def _unescape_word(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.replace("\\\n", ""))


def _literal(node: tree_sitter.Node) -> str | None:
    """The word's value after quote removal, or None when it expands anything at run time."""
    t = node.type
    text = _text(node)
    if t in ("word", "number", "variable_name", "special_variable_name"):
        if t == "special_variable_name":
            return None
        return _unescape_word(text)
    if t == "raw_string":
        return text[1:-1]
    if t == "ansi_c_string":
        try:
            return codecs.decode(text[2:-1], "unicode_escape")
        except (UnicodeDecodeError, ValueError):
            return None
    if t == "string":
        out = []
        for child in node.named_children:
            if child.type != "string_content":
                return None
            out.append(re.sub(r"\\([\"\\$`])", r"\1", _text(child)))
        return "".join(out)
    if t == "concatenation":
        pieces = [_literal(c) for c in node.children]
        if any(p is None for p in pieces):
            return None
        return "".join(p for p in pieces if p is not None)
    return None


def _text(node: tree_sitter.Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


# --- tables -----------------------------------------------------------------------------------------


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


READ = _names(
    """
    cat tac less more most head tail ls ll la dir vdir grep egrep fgrep rg ag ack locate mlocate
    which whereis type file stat wc uniq cut tr nl od xxd hexdump strings diff diff3 cmp comm echo
    printf pwd whoami id groups uname uptime cal df du free top htop atop btop ps pgrep pstree lsof
    ss netstat ping ping6 traceroute tracepath mtr dig nslookup host getent printenv last lastb
    lastlog w who users lsblk blkid lscpu lsmod lspci lsusb lshw dmidecode history true false test [
    [[ sleep seq basename dirname realpath readlink md5sum sha1sum sha224sum sha256sum sha384sum
    sha512sum b2sum cksum sum base64 base32 jq yq column fold fmt expand unexpand paste join rev
    zcat zless zmore zgrep zdiff bzcat xzcat lzcat zstdcat tree man info help apropos whatis nproc
    getconf locale tput clear cd pushd popd dirs set shopt read wait jobs fg bg disown umask ulimit
    exit logout return break continue shift : times caller compgen complete expr factor numfmt pr
    look tty arch lsb_release vmstat iostat mpstat sar pidstat nstat ifstat iftop nethogs iotop cal
    ncal calendar column od strings less bat batcat fzf diffstat colordiff lsattr namei findmnt df
    systemd-analyze uptime stat file getfacl sestatus getenforce id ldd nm objdump readelf size
    printf whois cmp sdiff wdiff xmllint yamllint shellcheck
    """
)
WRITE = _names(
    """
    touch mkdir cp mv ln install tee patch unzip gzip gunzip bzip2 bunzip2 xz unxz zstd unzstd zip
    7z rar unrar cpio split csplit chmod chown chgrp chattr setfacl vi vim nvim view nano pico emacs
    ed ex joe micro mcedit scp sftp yarn pnpm cargo go mktemp mkfifo mknod ssh-keygen ssh-add
    ssh-copy-id gpg tmux screen at batch logger wall write mesg notify-send xdg-open open
    """
)
DESTRUCTIVE = _names(
    """
    rm rmdir shred unlink wipe wipefs mkfs mkfs.ext2 mkfs.ext3 mkfs.ext4 mkfs.xfs mkfs.btrfs
    mkfs.vfat mkfs.fat mke2fs mkswap fdisk gdisk sfdisk cfdisk parted sgdisk truncate kill pkill
    killall killall5 xkill reboot shutdown poweroff halt init telinit swapoff umount userdel
    groupdel deluser delgroup lvremove vgremove pvremove dropdb blkdiscard srm
    """
)
PRIVILEGED = _names(
    """
    sudo su doas pkexec runuser chroot nsenter unshare setcap capsh visudo passwd chpasswd usermod
    useradd adduser groupadd groupmod gpasswd chsh chfn insmod rmmod modprobe kexec setenforce
    setsebool nft firewall-cmd alias hash enable systemd-run machinectl
    """
)
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ash", "ksh", "mksh", "yash", "fish", "csh", "tcsh"})
# Interpreter -> the options that take inline code.
INTERPRETERS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c"}),
    "python2": frozenset({"-c"}),
    "python3": frozenset({"-c"}),
    "pypy": frozenset({"-c"}),
    "pypy3": frozenset({"-c"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "node": frozenset({"-e", "-p", "--eval", "--print"}),
    "nodejs": frozenset({"-e", "-p", "--eval", "--print"}),
    "deno": frozenset({"eval"}),
    "bun": frozenset({"-e", "--eval"}),
    "php": frozenset({"-r"}),
    "lua": frozenset({"-e"}),
    "luajit": frozenset({"-e"}),
    "Rscript": frozenset({"-e"}),
    "R": frozenset({"-e"}),
    "tclsh": frozenset(),
    "wish": frozenset(),
    "expect": frozenset({"-c"}),
    "osascript": frozenset({"-e"}),
    "pwsh": frozenset({"-c", "-Command", "-command"}),
    "powershell": frozenset({"-c", "-Command", "-command"}),
    "irb": frozenset(),
    "groovy": frozenset({"-e"}),
    "julia": frozenset({"-e"}),
    "psql": frozenset({"-c", "--command"}),
    "mysql": frozenset({"-e", "--execute"}),
    "mariadb": frozenset({"-e", "--execute"}),
    "sqlite3": frozenset(),
    "redis-cli": frozenset(),
    "gdb": frozenset({"-ex", "--eval-command"}),
}
# Interpreters that, given no script, read code from standard input (a pipe or a here-document).
STDIN_CODE = frozenset(
    SHELLS
    | {
        "python",
        "python2",
        "python3",
        "pypy",
        "pypy3",
        "perl",
        "ruby",
        "node",
        "nodejs",
        "php",
        "lua",
        "Rscript",
        "R",
        "bun",
        "tclsh",
        "irb",
    }
)
# Variables that change how later commands are found or run.
RISKY_VARIABLES = _names(
    """
    PATH LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT BASH_ENV ENV PROMPT_COMMAND PS0 PS1 PS2 PS4 IFS ZDOTDIR
    PYTHONSTARTUP PYTHONPATH PERL5OPT PERL5LIB NODE_OPTIONS RUBYOPT GIT_SSH GIT_SSH_COMMAND
    GIT_EXEC_PATH EDITOR VISUAL PAGER SHELLOPTS BASHOPTS FPATH HISTFILE
    """
)
NO_WRITE_PATHS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-", "/dev/zero"})
_BLOCK_DEVICE = re.compile(r"^/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|md|dm-|loop|mapper/|disk/|mem$|kmem$|port$)")

# Wrapper -> options of the wrapper that take a separate argument.
WRAPPERS: dict[str, frozenset[str]] = {
    "nohup": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "setsid": frozenset(),
    "time": frozenset({"-f", "-o", "--format", "--output"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "unbuffer": frozenset(),
    "chrt": frozenset(),
    "taskset": frozenset(),
    "strace": frozenset({"-e", "-o", "-p", "-s", "-u", "-E"}),
    "ltrace": frozenset({"-e", "-o", "-p", "-s", "-u"}),
    "flock": frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}),
    "caffeinate": frozenset(),
    "doas": frozenset({"-u", "-C"}),
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group"}),
    "pkexec": frozenset({"--user"}),
    "runuser": frozenset({"-u", "-g", "-G", "--user", "--group"}),
    "chroot": frozenset({"--userspec", "--groups"}),
    "nsenter": frozenset({"-t", "--target"}),
    "busybox": frozenset(),
    "xargs": frozenset(
        {
            "-a",
            "-d",
            "-E",
            "-e",
            "-I",
            "-i",
            "-L",
            "-l",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--max-args",
            "--max-procs",
            "--max-chars",
            "--replace",
            "--max-lines",
            "--eof",
        }
    ),
}
# Wrappers that take one positional argument before the command.
WRAPPER_POSITIONALS = {"timeout": 1, "taskset": 1, "chrt": 1, "flock": 1, "chroot": 1}
WRAPPER_CLASS: dict[str, tuple[CommandClass, str]] = {
    "sudo": ("privileged", "runs a command as another user (sudo)"),
    "doas": ("privileged", "runs a command as another user (doas)"),
    "pkexec": ("privileged", "runs a command as another user (pkexec)"),
    "runuser": ("privileged", "runs a command as another user (runuser)"),
    "chroot": ("privileged", "runs a command in another root (chroot)"),
    "nsenter": ("privileged", "runs a command in other namespaces (nsenter)"),
}


# --- the walker --------------------------------------------------------------------------------------


class _TooBig(Exception):
    pass


class _Walker:
    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.nodes = 0

    def add(
        self,
        words: list[str],
        cls: CommandClass,
        reason: str,
        parent: int | None,
        writes: list[str] | None = None,
    ) -> int:
        self.parts.append(Part(words, cls, reason, parent, writes or []))
        return len(self.parts) - 1

    def line(self, text: str, parent: int | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.add(
                ["?"], "privileged", f"strings run by a shell are nested more than {MAX_DEPTH} deep", parent
            )
            return
        tree = _PARSER.parse(text.encode("utf-8", "surrogateescape"))
        root = tree.root_node
        try:
            if root.has_error:
                bad = _first_error(root)
                where = f" near {_show([_text(bad)[:40]])!r}" if bad is not None and _text(bad) else ""
                self.add(
                    [text.strip()[:60] or "?"],
                    "privileged",
                    f"the line does not parse as shell{where}, so sshkeep cannot see what it runs",
                    parent,
                )
            self.walk(root, parent, depth)
        except _TooBig:
            self.add(["?"], "privileged", "the line is too complex to classify", parent)

    def walk(self, node: tree_sitter.Node, parent: int | None, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig
        t = node.type
        if t == "command":
            self.command(node, parent, depth)
            return
        if t == "redirected_statement":
            body = node.child_by_field_name("body")
            writes, problems = self.redirects(node.children_by_field_name("redirect"), parent, depth)
            if body is not None:
                before = len(self.parts)
                self.walk(body, parent, depth)
                if writes or problems:
                    target = _direct_part(self.parts, before, parent)
                    if target is not None:
                        self._apply_writes(self.parts[target], writes, problems)
                        return
            if writes or problems:
                self._redirect_only(writes, problems, parent)
            return
        if t == "variable_assignment":
            self.assignment(node, parent, depth, scope="shell")
            return
        if t == "declaration_command":
            self.declaration(node, parent, depth)
            return
        if t in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
            writes, problems = self.redirects([node], parent, depth)
            if writes or problems:
                self._redirect_only(writes, problems, parent)
            return
        for child in node.named_children:
            self.walk(child, parent, depth)

    # --- redirections ---

    def redirects(
        self, nodes: list[tree_sitter.Node], parent: int | None, depth: int
    ) -> tuple[list[str], list[str]]:
        """(literal paths written, descriptions of computed or device targets); walks substitutions."""
        writes: list[str] = []
        problems: list[str] = []
        for r in nodes:
            for child in r.named_children:
                if child.type not in (
                    "word",
                    "number",
                    "file_descriptor",
                    "heredoc_start",
                    "heredoc_end",
                    "heredoc_content",
                ):
                    self.walk(child, parent, depth)
            if r.type != "file_redirect":
                continue
            op = "".join(_text(c) for c in r.children if not c.is_named)
            dest = r.child_by_field_name("destination")
            if dest is None or not any(ch in op for ch in ">") or op in (">&-",):
                continue
            if op in (">&", "<&") and dest.type == "number":
                continue
            value = _literal(dest)
            if value is None:
                problems.append("writes to a computed path")
            elif (
                (op in (">&", "<&") and (value.isdigit() or value == "-"))
                or value in NO_WRITE_PATHS
                or value.startswith("/dev/fd/")
            ):
                continue
            else:
                writes.append(value)
        return writes, problems

    def _apply_writes(self, part: Part, writes: list[str], problems: list[str]) -> None:
        part.writes.extend(writes)
        cls, reason = _write_class(writes, problems)
        if SEVERITY[cls] > SEVERITY[part.cls]:
            part.cls, part.reason = cls, reason

    def _redirect_only(self, writes: list[str], problems: list[str], parent: int | None) -> None:
        cls, reason = _write_class(writes, problems)
        self.add([f"> {w}" for w in writes] or ["> ?"], cls, reason, parent, writes)

    # --- assignments ---

    def assignment(self, node: tree_sitter.Node, parent: int | None, depth: int, scope: str) -> None:
        name_node = node.child_by_field_name("name")
        name = _text(name_node) if name_node is not None else ""
        value = node.child_by_field_name("value")
        if value is not None:
            self.walk(value, parent, depth)
        if name in RISKY_VARIABLES:
            self.add(
                [_text(node)[:60]],
                "privileged",
                f"sets {name}, which changes how "
                f"{'this command runs' if scope == 'command' else 'later commands run'}",
                parent,
            )

    def declaration(self, node: tree_sitter.Node, parent: int | None, depth: int) -> None:
        for child in node.named_children:
            if child.type == "variable_assignment":
                self.assignment(child, parent, depth, scope="shell")
            elif child.type == "word" and _literal(child) in RISKY_VARIABLES:
                self.add([_text(node)[:60]], "privileged", f"exports {_literal(child)}", parent)
            else:
                self.walk(child, parent, depth)

    # --- commands ---

    def command(self, node: tree_sitter.Node, parent: int | None, depth: int) -> None:
        name_node = node.child_by_field_name("name")
        args = node.children_by_field_name("argument")
        for child in node.named_children:
            if child.type == "variable_assignment":
                self.assignment(child, parent, depth, scope="command")
        writes, problems = self.redirects(node.children_by_field_name("redirect"), parent, depth)
        # Substitutions inside the words run first: walk them as commands of their own.
        for word in [name_node, *args]:
            if word is not None:
                for sub in _substitutions(word):
                    self.walk(sub, parent, depth)
        if name_node is None:
            if writes or problems:
                self._redirect_only(writes, problems, parent)
            return
        inner = name_node.named_children[0] if name_node.named_children else name_node
        name = _literal(inner)
        words = [name if name is not None else "?"] + [_literal(a) or "?" for a in args]
        arg_nodes = list(args)
        if name is None or _GLOB.search(name):
            what = "a glob" if name is not None else f"computed ({_text(inner)[:40]})"
            idx = self.add(
                [_text(inner)[:40], *words[1:]],
                "privileged",
                f"the command word is {what}, so sshkeep cannot tell what runs",
                parent,
            )
        else:
            idx = self.simple(words, arg_nodes, parent, depth)
        if writes or problems:
            self._apply_writes(self.parts[idx], writes, problems)

    def simple(
        self, words: list[str], arg_nodes: list[tree_sitter.Node], parent: int | None, depth: int
    ) -> int:
        """Classify one command given as words (arg_nodes: its argument nodes, when parsed)."""
        raw = words[0]
        name = posixpath.basename(raw) if "/" in raw and raw not in ("/", "//") else raw
        args = words[1:]
        if raw == "" and not args:
            return self.add(words, "read", "empty command", parent)
        if name in ("eval",):
            return self.shell_string(words, " ".join(args), "eval", parent, depth, computed="?" in args)
        if name in ("source", "."):
            return self.add(words, "unknown", "runs the commands of a file sshkeep cannot see", parent)
        if name in SHELLS:
            return self.shell(words, name, args, parent, depth)
        if name in INTERPRETERS:
            return self.interpreter(words, name, args, parent)
        if name in WRAPPERS:
            return self.wrapper(words, name, args, parent, depth)
        if name == "env":
            return self.env(words, args, parent, depth)
        special = _SPECIAL.get(name)
        if special is not None:
            return special(self, words, name, args, parent, depth)
        cls, reason = _table_class(name)
        return self.add(words, cls, reason, parent)

    def shell_string(
        self,
        words: list[str],
        code: str,
        how: str,
        parent: int | None,
        depth: int,
        computed: bool,
        cls: CommandClass = "read",
        reason: str = "",
    ) -> int:
        if computed:
            return self.add(words, "privileged", f"{how} runs a string computed at run time", parent)
        idx = self.add(words, cls, reason or f"{how} runs the commands it is given", parent)
        self.line(code, idx, depth + 1)
        return idx

    def shell(self, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-c" or (a.startswith("-") and not a.startswith("--") and "c" in a[1:]):
                if i + 1 >= len(args):
                    return self.add(words, "privileged", f"{name} -c without a command", parent)
                code = args[i + 1]
                return self.shell_string(words, code, f"{name} -c", parent, depth, computed=code == "?")
            if a in ("-s", "-i", "--login", "-l") or a == "-":
                i += 1
                continue
            if a.startswith(("-", "+")):
                i += 1
                continue
            return self.add(words, "unknown", f"{name} runs the script {a}, which sshkeep cannot see", parent)
        return self.add(words, "privileged", f"{name} reads the commands it runs from standard input", parent)

    def interpreter(self, words: list[str], name: str, args: list[str], parent: int | None) -> int:
        inline = INTERPRETERS[name]
        for i, a in enumerate(args):
            if a in inline or any(
                a.startswith(o) and len(o) == 2 and len(a) > 2 for o in inline if o[1] != "-"
            ):
                return self.add(
                    words, "privileged", f"{name} {a[:2] if len(a) > 2 else a} runs inline code", parent
                )
            if a.startswith("--") and a.split("=")[0] in inline:
                return self.add(words, "privileged", f"{name} {a.split('=')[0]} runs inline code", parent)
            if not a.startswith("-"):
                if name in ("psql", "mysql", "mariadb", "sqlite3", "redis-cli", "gdb"):
                    return self.add(
                        words, "unknown", f"{name} talks to a database or program sshkeep cannot see", parent
                    )
                if (
                    name in ("python", "python2", "python3", "pypy", "pypy3")
                    and i > 0
                    and args[i - 1] == "-m"
                ):
                    return self.add(
                        words, "unknown", f"{name} runs module {a}, which sshkeep cannot see", parent
                    )
                return self.add(words, "unknown", f"{name} runs {a}, which sshkeep cannot see", parent)
            if a in ("-V", "--version", "-h", "--help") and name not in ("psql", "mysql"):
                return self.add(words, "read", f"{name} {a} prints information", parent)
        if name in STDIN_CODE:
            return self.add(words, "privileged", f"{name} reads the code it runs from standard input", parent)
        return self.add(words, "unknown", f"{name} is an interactive program sshkeep cannot see into", parent)

    def wrapper(self, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
        takes = WRAPPERS[name]
        positionals = WRAPPER_POSITIONALS.get(name, 0)
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                i += 1
                break
            if a.startswith("-") and len(a) > 1:
                if name == "command" and a in ("-v", "-V"):
                    return self.add(words, "read", "command -v looks a command up", parent)
                if name in ("sudo", "su", "doas") and a in ("-i", "-s", "--login", "--shell"):
                    return self.add(words, "privileged", f"{name} {a} opens a root shell", parent)
                if name == "sudo" and a in ("-l", "-v", "-k", "-K", "--list", "--validate"):
                    return self.add(words, "read", f"sudo {a} changes nothing", parent)
                if name == "flock" and a in ("-c", "--command"):
                    i += 1
                    code = args[i] if i < len(args) else "?"
                    return self.shell_string(
                        words, code, "flock -c", parent, depth, computed=code == "?", cls="unknown"
                    )
                i += 2 if (a in takes and "=" not in a) else 1
                continue
            if positionals > 0:
                positionals -= 1
                i += 1
                continue
            break
        inner = args[i:]
        cls, reason = WRAPPER_CLASS.get(name, ("read", f"{name} runs the command it wraps"))
        if name == "xargs":
            reason = "xargs runs a command with arguments read from standard input"
            if not inner:
                inner = ["echo"]
        if name == "busybox" and not inner:
            return self.add(words, "read", "busybox lists its applets", parent)
        if name == "exec" and not inner:
            return self.add(words, "read", "exec changes the shell's file descriptors", parent)
        if name == "time" and not inner:
            return self.add(words, "read", "time of nothing", parent)
        if not inner:
            if name in ("sudo", "doas", "chroot", "pkexec", "runuser"):
                return self.add(words, "privileged", WRAPPER_CLASS[name][1], parent)
            return self.add(words, "read", f"{name} with no command", parent)
        idx = self.add(words, cls, reason, parent)
        if inner[0] == "?":
            self.add(
                inner,
                "privileged",
                f"the command {name} runs is computed, so sshkeep cannot tell what runs",
                idx,
            )
        else:
            self.simple(inner, [], idx, depth)
        return idx

    def env(self, words: list[str], args: list[str], parent: int | None, depth: int) -> int:
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-u", "--unset", "-C", "--chdir"):
                i += 2
                continue
            if a in ("-S", "--split-string") or a.startswith("--split-string="):
                code = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else "?")
                return self.shell_string(words, code, "env -S", parent, depth, computed=code == "?")
            if a.startswith("-") and a != "-":
                i += 1
                continue
            if "=" in a and not a.startswith("="):
                var = a.split("=", 1)[0]
                if var in RISKY_VARIABLES:
                    return self.add(
                        words, "privileged", f"env sets {var}, which changes how the command runs", parent
                    )
                i += 1
                continue
            break
        inner = args[i:]
        if not inner:
            return self.add(words, "read", "env prints the environment", parent)
        idx = self.add(words, "read", "env runs the command it wraps", parent)
        if inner[0] == "?":
            self.add(inner, "privileged", "the command env runs is computed", idx)
        else:
            self.simple(inner, [], idx, depth)
        return idx


def _direct_part(parts: list[Part], start: int, parent: int | None) -> int | None:
    """The first part added at or after `start` whose parent is `parent` (the redirected command)."""
    for i in range(start, len(parts)):
        if parts[i].parent == parent:
            return i
    return None


def _write_class(writes: list[str], problems: list[str]) -> tuple[CommandClass, str]:
    devices = [w for w in writes if _BLOCK_DEVICE.match(w)]
    if devices:
        return "destructive", f"writes to the device {devices[0]}"
    if writes:
        return "write", f"writes to {', '.join(writes[:3])}"
    return "write", problems[0] if problems else "writes a file"


def _substitutions(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Command and process substitutions (and `$(( ))`) anywhere inside a word."""
    if node.type in ("command_substitution", "process_substitution"):
        yield node
        return
    if node.type in ("expansion", "arithmetic_expansion"):
        for child in node.named_children:
            yield from _substitutions(child)
        return
    for child in node.named_children:
        yield from _substitutions(child)


def _first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error:
            found = _first_error(child)
            if found is not None:
                return found
    return None


def _table_class(name: str) -> tuple[CommandClass, str]:
    if name in PRIVILEGED:
        return "privileged", f"{name} changes the system or acts as another user"
    if name in DESTRUCTIVE or name.startswith("mkfs."):
        return "destructive", f"{name} removes, kills or stops things"
    if name in WRITE:
        return "write", f"{name} changes files"
    if name in READ:
        return "read", f"{name} only reads"
    return "unknown", f"{name} is not a command sshkeep knows"


# --- commands whose arguments decide -----------------------------------------------------------------


def _opts(args: list[str]) -> set[str]:
    """Every option letter and long option in `args` (`-rf` gives -r and -f)."""
    out: set[str] = set()
    for a in args:
        if a.startswith("--"):
            out.add(a.split("=", 1)[0])
        elif a.startswith("-") and len(a) > 1:
            out.update("-" + ch for ch in a[1:])
    return out


def _positional(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def _sub_first(args: list[str], skip_with_value: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """(subcommand, its arguments): the first non-option word."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in skip_with_value:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a, args[i + 1 :]
    return "", []


def _git(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    sub, rest = _sub_first(args, frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"}))
    o = _opts(rest)
    read = {
        "status",
        "log",
        "diff",
        "show",
        "rev-parse",
        "ls-files",
        "ls-tree",
        "ls-remote",
        "blame",
        "grep",
        "describe",
        "shortlog",
        "cat-file",
        "whatchanged",
        "rev-list",
        "help",
        "version",
        "name-rev",
        "for-each-ref",
        "show-ref",
        "count-objects",
        "verify-commit",
        "check-ignore",
        "difftool",
        "",
    }
    if sub in read:
        return w.add(words, "read", f"git {sub or '(no subcommand)'} only reads", parent)
    if (
        sub == "branch"
        and not (o & {"-d", "-D", "-m", "-M", "--delete", "--move", "-c", "-C"})
        and not _positional(rest)
    ):
        return w.add(words, "read", "git branch lists branches", parent)
    if sub == "branch" and o & {"-D", "--delete", "-d"}:
        return w.add(words, "destructive", "git branch -d/-D deletes a branch", parent)
    if sub in ("tag", "remote", "stash", "config", "worktree", "reflog") and (
        not rest or rest[0] in ("-l", "--list", "list", "show", "-v", "--get", "--get-all", "--list")
    ):
        return w.add(words, "read", f"git {sub} lists", parent)
    if sub == "clean":
        return w.add(words, "destructive", "git clean deletes untracked files", parent)
    if sub == "reset" and o & {"--hard", "--merge", "--keep"}:
        return w.add(words, "destructive", "git reset --hard discards changes", parent)
    if sub == "push" and (
        o & {"-f", "--force", "--force-with-lease", "--delete", "-d", "--mirror", "--prune"}
        or any(a.startswith((":", "+")) for a in _positional(rest))
    ):
        return w.add(
            words, "destructive", "git push --force/--delete rewrites or removes remote history", parent
        )
    if sub in ("checkout", "restore") and ("--" in rest or "." in rest or o & {"-f", "--force"}):
        return w.add(words, "destructive", f"git {sub} discards working-tree changes", parent)
    if sub == "stash" and rest and rest[0] in ("drop", "clear"):
        return w.add(words, "destructive", "git stash drop/clear deletes stashed changes", parent)
    if sub in ("filter-branch", "filter-repo", "prune", "gc") or (sub == "update-ref" and "-d" in o):
        return w.add(words, "destructive", f"git {sub} can discard history", parent)
    return w.add(words, "write", f"git {sub} changes the repository", parent)


_SYSTEMCTL_READ = frozenset(
    {
        "status",
        "show",
        "cat",
        "list-units",
        "list-unit-files",
        "list-timers",
        "list-sockets",
        "list-jobs",
        "list-dependencies",
        "list-machines",
        "is-active",
        "is-enabled",
        "is-failed",
        "is-system-running",
        "help",
        "show-environment",
        "get-default",
        "",
    }
)
_SYSTEMCTL_DESTRUCTIVE = frozenset(
    {
        "stop",
        "restart",
        "try-restart",
        "reload-or-restart",
        "try-reload-or-restart",
        "condrestart",
        "kill",
        "disable",
        "mask",
        "reboot",
        "poweroff",
        "halt",
        "isolate",
        "rescue",
        "emergency",
        "kexec",
        "suspend",
        "hibernate",
        "hybrid-sleep",
        "daemon-reexec",
        "reset-failed",
        "clean",
        "freeze",
        "soft-reboot",
    }
)


def _systemctl(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    sub, _ = _sub_first(
        args,
        frozenset(
            {
                "-H",
                "--host",
                "-M",
                "--machine",
                "-t",
                "--type",
                "-p",
                "--property",
                "-n",
                "--lines",
                "-o",
                "--output",
                "--state",
                "-s",
                "--signal",
            }
        ),
    )
    if sub in _SYSTEMCTL_READ:
        return w.add(words, "read", f"systemctl {sub or 'list-units'} only reads", parent)
    if sub in _SYSTEMCTL_DESTRUCTIVE:
        return w.add(words, "destructive", f"systemctl {sub} stops or disables services", parent)
    return w.add(words, "privileged", f"systemctl {sub} changes services", parent)


def _service(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    pos = _positional(args)
    action = pos[1] if len(pos) > 1 else ("status" if "--status-all" in args else "")
    if action in ("status", ""):
        return w.add(words, "read", "service status only reads", parent)
    if action in ("stop", "restart", "force-reload", "force-stop", "try-restart", "condrestart", "zap"):
        return w.add(words, "destructive", f"service {action} stops a service", parent)
    return w.add(words, "privileged", f"service {action} changes a service", parent)


def _containers(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    sub, rest = _sub_first(
        args, frozenset({"-H", "--host", "--context", "-c", "--config", "--log-level", "-l"})
    )
    if (
        sub
        in (
            "container",
            "image",
            "network",
            "volume",
            "system",
            "compose",
            "builder",
            "node",
            "service",
            "stack",
            "secret",
            "config",
            "plugin",
            "context",
            "pod",
            "machine",
        )
        and rest
    ):
        sub2, rest2 = _sub_first(rest)
        sub, rest = (f"{sub} {sub2}", rest2) if sub2 else (sub, rest)
    last = sub.split(" ")[-1] if sub else ""
    if last in (
        "ps",
        "images",
        "logs",
        "inspect",
        "version",
        "info",
        "top",
        "stats",
        "port",
        "diff",
        "history",
        "events",
        "search",
        "ls",
        "list",
        "df",
        "config",
        "help",
        "",
    ):
        return w.add(words, "read", f"{name} {sub or ''} only reads".replace("  ", " "), parent)
    if last in ("rm", "rmi", "kill", "stop", "prune", "down", "remove", "restart", "rmf"):
        return w.add(words, "destructive", f"{name} {sub} removes or stops containers or images", parent)
    if last in ("run", "exec", "create", "start", "up"):
        if any(
            a in ("--privileged", "--pid=host", "--net=host", "--network=host")
            or a.startswith("--cap-add")
            or a.startswith(("-v/", "--volume=/:", "-v=/:"))
            for a in rest
        ):
            return w.add(words, "privileged", f"{name} {sub} runs a privileged container", parent)
        return w.add(words, "unknown", f"{name} {sub} runs a program in a container", parent)
    return w.add(words, "write", f"{name} {sub} changes containers or images", parent)


def _kubectl(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    sub, rest = _sub_first(
        args,
        frozenset(
            {
                "-n",
                "--namespace",
                "--context",
                "--kubeconfig",
                "-l",
                "--selector",
                "-o",
                "--output",
                "--cluster",
                "--user",
                "-s",
                "--server",
            }
        ),
    )
    if (
        sub
        in (
            "get",
            "describe",
            "logs",
            "top",
            "explain",
            "version",
            "api-resources",
            "api-versions",
            "cluster-info",
            "diff",
            "events",
            "wait",
            "help",
            "",
        )
        or (sub == "config" and rest[:1] == ["view"])
        or (sub == "auth" and rest[:1] == ["can-i"])
        or (sub == "rollout" and rest[:1] in (["status"], ["history"]))
    ):
        return w.add(words, "read", f"{name} {sub} only reads", parent)
    if sub in ("delete", "drain", "replace") or (sub == "rollout" and rest[:1] == ["undo"]):
        return w.add(words, "destructive", f"{name} {sub} removes or replaces resources", parent)
    if sub in ("exec", "run", "debug", "attach", "cp", "port-forward", "proxy"):
        return w.add(words, "unknown", f"{name} {sub} runs or reaches into a container", parent)
    return w.add(words, "write", f"{name} {sub} changes the cluster", parent)


def _packages(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    sub, _ = _sub_first(args)
    if sub in (
        "list",
        "show",
        "search",
        "policy",
        "info",
        "view",
        "ls",
        "freeze",
        "check",
        "outdated",
        "depends",
        "rdepends",
        "madison",
        "showpkg",
        "why",
        "audit",
        "query",
        "-Q",
        "help",
        "version",
        "",
    ):
        return w.add(words, "read", f"{name} {sub} only reads", parent)
    if sub in (
        "remove",
        "purge",
        "autoremove",
        "uninstall",
        "erase",
        "rm",
        "r",
        "un",
        "unlink",
        "prune",
        "clean",
        "autoclean",
        "dist-clean",
    ):
        return w.add(words, "destructive", f"{name} {sub} removes packages", parent)
    if sub in ("run", "exec", "x", "dlx", "npx", "run-script", "start", "test"):
        return w.add(words, "unknown", f"{name} {sub} runs scripts sshkeep cannot see", parent)
    return w.add(words, "write", f"{name} {sub} installs or changes packages", parent)


def _crontab(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    o = _opts(args)
    if "-l" in o:
        return w.add(words, "read", "crontab -l lists the crontab", parent)
    if "-r" in o:
        return w.add(words, "destructive", "crontab -r removes the crontab", parent)
    return w.add(words, "privileged", "crontab installs commands that run later", parent)


def _curl(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    o = _opts(args)
    writes_file = o & {
        "-o",
        "-O",
        "--output",
        "--remote-name",
        "--remote-name-all",
        "-J",
        "--remote-header-name",
    }
    sends = o & {
        "-T",
        "--upload-file",
        "-d",
        "--data",
        "--data-binary",
        "--data-raw",
        "--data-urlencode",
        "-F",
        "--form",
        "--json",
    }
    method = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-X", "--request")), "")
    method = method or next((a[2:] for a in args if a.startswith("-X") and len(a) > 2), "")
    if writes_file:
        return w.add(words, "write", "curl -o writes a file", parent)
    if sends or method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
        return w.add(words, "write", "curl sends data to a server", parent)
    return w.add(words, "read", "curl fetches a URL to standard output", parent)


def _wget(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if (
        "--spider" in args
        or any(args[i : i + 2] == ["-O", "-"] for i in range(len(args)))
        or "-O-" in args
        or "-qO-" in args
    ):
        return w.add(words, "read", "wget to standard output only reads", parent)
    return w.add(words, "write", "wget downloads a file", parent)


def _tar(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    first = args[0] if args else ""
    letters = first.lstrip("-") if first and not first.startswith("--") else ""
    if "t" in letters or "--list" in args:
        return w.add(words, "read", "tar -t lists an archive", parent)
    return w.add(words, "write", "tar creates or extracts files", parent)


def _sort(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-o" in _opts(args):
        return w.add(words, "write", "sort -o writes a file", parent)
    return w.add(words, "read", "sort only reads", parent)


def _tee(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    paths = [a for a in _positional(args) if a not in NO_WRITE_PATHS]
    if not paths:
        return w.add(words, "read", "tee to standard output only", parent)
    cls, reason = _write_class(paths, [])
    return w.add(words, cls, reason, parent, paths)


def _dd(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    out = next((a[3:] for a in args if a.startswith("of=")), None)
    if out is None or out in NO_WRITE_PATHS:
        return w.add(words, "read", "dd to standard output", parent)
    cls, reason = _write_class([out], [])
    return w.add(words, "destructive" if cls == "destructive" else "write", f"dd {reason}", parent, [out])


def _sed(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if any(
        a == "-i"
        or a.startswith(("-i", "--in-place"))
        or (a.startswith("-") and not a.startswith("--") and "i" in a[1:])
        for a in args
    ):
        return w.add(words, "write", "sed -i edits files in place", parent)
    script = " ".join(a for a in args if not a.startswith("-"))
    if re.search(r"/[gpiImM0-9]*e\b|(?:^|[;{}\s])e(?:\s|$)", script):
        return w.add(words, "privileged", "the sed script runs commands (e)", parent)
    if re.search(r"(?:^|[;{}\s/])w\s+\S", script):
        return w.add(words, "write", "the sed script writes a file (w)", parent)
    return w.add(words, "read", "sed without -i only reads", parent)


def _awk(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-f" in args or any(a.startswith("--file") for a in args):
        return w.add(words, "unknown", f"{name} -f runs a program file sshkeep cannot see", parent)
    if any(a.startswith("-i") and "inplace" in a for a in args) or "inplace" in args:
        return w.add(words, "write", f"{name} -i inplace edits files", parent)
    program = next((a for a in args if not a.startswith("-")), "")
    if program == "?" or re.search(r"\bsystem\s*\(|\|\s*getline|\|&|\bprint[f]?\b[^;}]*\|", program):
        return w.add(words, "privileged", f"the {name} program runs commands", parent)
    if re.search(r"\bprint[f]?\b[^;}]*>", program):
        return w.add(words, "write", f"the {name} program writes a file", parent)
    return w.add(words, "read", f"{name} only reads", parent)


def _find(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    idx = w.add(words, "read", "find only lists files", parent)
    part = w.parts[idx]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            inner: list[str] = []
            while j < len(args) and args[j] not in (";", "+", "\\;"):
                inner.append(args[j])
                j += 1
            if inner:
                part.reason = f"find {a} runs a command for each file"
                if inner[0] == "?":
                    w.add(inner, "privileged", f"the command find {a} runs is computed", idx)
                else:
                    w.simple(inner, [], idx, depth)
            i = j + 1
            continue
        if a == "-delete":
            part.cls, part.reason = "destructive", "find -delete removes files"
        elif a in ("-fprint", "-fprint0", "-fprintf", "-fls") and i + 1 < len(args):
            part.writes.append(args[i + 1])
            if SEVERITY[part.cls] < SEVERITY["write"]:
                part.cls, part.reason = "write", f"find {a} writes {args[i + 1]}"
        i += 1
    return idx


def _ssh(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    takes = set("BbcDEeFIiJLlmOopQRSWw")
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a.startswith("-") and len(a) > 1:
            i += 2 if (a[-1] in takes and len(a) == 2) else 1
            continue
        break
    rest = args[i + 1 :]
    if not rest:
        return w.add(
            words, "unknown", "ssh opens a shell on another host, which sshkeep does not police", parent
        )
    code = " ".join(rest)
    idx = w.add(words, "unknown", "ssh runs a command on another host", parent)
    if "?" in rest:
        w.add(rest, "privileged", "the command ssh runs is computed", idx)
    else:
        w.line(code, idx, depth + 1)
    return idx


def _su(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    for i, a in enumerate(args):
        if a in ("-c", "--command") and i + 1 < len(args):
            return w.shell_string(
                words,
                args[i + 1],
                f"{name} -c",
                parent,
                depth,
                computed=args[i + 1] == "?",
                cls="privileged",
                reason=f"{name} runs a command as another user",
            )
    return w.add(words, "privileged", f"{name} opens a shell as another user", parent)


def _watch(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-n", "--interval", "-d", "--differences") and "=" not in args[i] else 1
    inner = args[i:]
    if not inner:
        return w.add(words, "read", "watch with no command", parent)
    return w.shell_string(words, " ".join(inner), "watch", parent, depth, computed="?" in inner)


def _script(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    for i, a in enumerate(args):
        if a in ("-c", "--command") and i + 1 < len(args):
            return w.shell_string(words, args[i + 1], "script -c", parent, depth, computed=args[i + 1] == "?")
    return w.add(words, "privileged", "script opens a shell sshkeep cannot see", parent)


def _trap(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    pos = [a for a in args if a not in ("-p", "-l", "--")]
    if not pos or args[:1] in (["-p"], ["-l"]):
        return w.add(words, "read", "trap lists traps", parent)
    return w.shell_string(
        words,
        pos[0],
        "trap",
        parent,
        depth,
        computed=pos[0] == "?",
        cls="privileged",
        reason="trap installs a command that runs later",
    )


def _alias(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if not any("=" in a for a in args):
        return w.add(words, "read", "alias lists aliases", parent)
    return w.add(words, "privileged", "alias redefines what a command name runs", parent)


def _kill(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if name == "kill" and (args[:1] in (["-l"], ["-L"]) or args[:1] == ["-0"] or "--list" in args):
        return w.add(words, "read", "kill -l/-0 sends no signal", parent)
    return w.add(words, "destructive", f"{name} sends signals that stop processes", parent)


def _chmod(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if ("-R" in args or "--recursive" in args) and any(a in ("/", "/*", "~", "/etc", "/usr") for a in args):
        return w.add(words, "destructive", f"{name} -R on a whole tree", parent)
    return w.add(words, "write", f"{name} changes file permissions or owners", parent)


def _date(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-s" in args or any(a.startswith("--set") for a in args):
        return w.add(words, "privileged", "date -s sets the clock", parent)
    return w.add(words, "read", "date only reads", parent)


def _hostname(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    if _positional(args) and name == "hostname":
        return w.add(words, "privileged", "hostname NAME renames the host", parent)
    if name == "hostnamectl" and _positional(args)[:1] not in ([], ["status"]):
        return w.add(words, "privileged", f"hostnamectl {_positional(args)[0]} changes the host", parent)
    return w.add(words, "read", f"{name} only reads", parent)


def _journalctl(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    if any(a.startswith(("--vacuum", "--rotate", "--flush", "--relinquish")) for a in args):
        return w.add(words, "destructive", "journalctl --vacuum/--rotate removes or moves logs", parent)
    return w.add(words, "read", "journalctl only reads", parent)


def _dmesg(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if _opts(args) & {"-c", "-C", "--clear", "--read-clear", "-n", "--console-level", "-D", "-E"}:
        return w.add(words, "destructive", "dmesg -c/-C clears the kernel log", parent)
    return w.add(words, "read", "dmesg only reads", parent)


def _ip(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    changing = {
        "add",
        "del",
        "delete",
        "flush",
        "set",
        "change",
        "replace",
        "append",
        "prepend",
        "exec",
        "up",
        "down",
        "attach",
        "detach",
    }
    if name == "ip" and not any(a in changing for a in args):
        return w.add(words, "read", "ip only shows", parent)
    if name in ("ifconfig", "route") and len(_positional(args)) <= 1 and not any(a in changing for a in args):
        return w.add(words, "read", f"{name} only shows", parent)
    return w.add(words, "privileged", f"{name} changes the network configuration", parent)


def _firewall(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    o = _opts(args)
    if (
        name in ("iptables", "ip6tables", "iptables-legacy", "iptables-nft")
        and o & {"-L", "-S", "--list", "--list-rules"}
        and not o & {"-F", "-X", "-D", "-A", "-I", "-P", "-Z", "-N", "-R", "-E"}
    ):
        return w.add(words, "read", f"{name} -L only lists", parent)
    if name == "ufw" and _positional(args)[:1] in (["status"], ["show"], ["app"]):
        return w.add(words, "read", "ufw status only reads", parent)
    if o & {"-F", "-X", "-D", "--flush", "--delete"} or _positional(args)[:1] in (
        ["disable"],
        ["reset"],
        ["delete"],
        ["flush"],
    ):
        return w.add(words, "destructive", f"{name} removes firewall rules", parent)
    return w.add(words, "privileged", f"{name} changes the firewall", parent)


def _mount(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if not args or args in (["-l"], ["--list"]) or (args[0] == "-t" and len(args) == 2):
        return w.add(words, "read", "mount lists mounts", parent)
    return w.add(words, "privileged", "mount changes mounts", parent)


def _sysctl(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-w" in args or "-p" in args or "--system" in args or any("=" in a for a in args):
        return w.add(words, "privileged", "sysctl sets kernel parameters", parent)
    return w.add(words, "read", "sysctl only reads", parent)


def _rsync(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if any(a.startswith(("--delete", "--remove-source-files")) for a in args):
        return w.add(words, "destructive", "rsync --delete removes files", parent)
    return w.add(words, "write", "rsync copies files", parent)


def _make(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if _opts(args) & {
        "-n",
        "--dry-run",
        "--just-print",
        "-p",
        "--print-data-base",
        "-q",
        "--question",
    } or args[:1] in (["--version"], ["--help"]):
        return w.add(words, "read", f"{name} -n only prints", parent)
    return w.add(words, "unknown", f"{name} runs build rules sshkeep cannot see", parent)


def _zfs(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    sub = _positional(args)[:1]
    if sub in (["list"], ["get"], ["status"], ["iostat"], ["history"], []):
        return w.add(words, "read", f"{name} only reads", parent)
    if sub in (["destroy"], ["rollback"], ["remove"], ["labelclear"]):
        return w.add(words, "destructive", f"{name} {sub[0]} destroys data", parent)
    return w.add(words, "privileged", f"{name} {sub[0]} changes storage", parent)


def _openssl(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-out" in args or "-keyout" in args:
        return w.add(words, "write", "openssl -out writes a file", parent)
    return w.add(words, "read", "openssl without -out only prints", parent)


def _mv_cp(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    pos = _positional(args)
    dest = pos[-1:] if len(pos) >= 2 else []
    if any(_BLOCK_DEVICE.match(d) for d in dest):
        return w.add(words, "destructive", f"{name} overwrites the device {dest[0]}", parent, dest)
    return w.add(words, "write", f"{name} {'moves' if name == 'mv' else 'copies'} files", parent, dest)


def _printf(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    return w.add(words, "read", f"{name} only prints", parent)


def _fuser(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-k" in _opts(args):
        return w.add(words, "destructive", "fuser -k kills processes", parent)
    return w.add(words, "read", "fuser only lists", parent)


def _hdparm(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if any(
        a.startswith("--security") or a in ("--trim-sector-ranges", "--write-sector", "--dco-restore")
        for a in args
    ):
        return w.add(words, "destructive", "hdparm can erase a disk", parent)
    return w.add(words, "privileged", "hdparm changes disk settings", parent)


def _bind(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if "-x" in args:
        return w.add(words, "privileged", "bind -x makes a key run a command", parent)
    return w.add(words, "read", "bind changes key bindings", parent)


def _export_like(
    w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int
) -> int:
    return w.add(words, "read", f"{name} sets shell variables", parent)


def _nc(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    if _opts(args) & {"-e", "-c", "--exec", "--sh-exec", "--lua-exec"}:
        return w.add(words, "privileged", f"{name} -e runs a program for the connection", parent)
    if "-l" in _opts(args):
        return w.add(words, "unknown", f"{name} -l listens for connections", parent)
    return w.add(words, "read", f"{name} connects to a port", parent)


def _editor(w: _Walker, words: list[str], name: str, args: list[str], parent: int | None, depth: int) -> int:
    return w.add(words, "write", f"{name} is an editor that can write files", parent)


_SPECIAL = {
    "git": _git,
    "systemctl": _systemctl,
    "service": _service,
    "docker": _containers,
    "podman": _containers,
    "nerdctl": _containers,
    "kubectl": _kubectl,
    "oc": _kubectl,
    "apt": _packages,
    "apt-get": _packages,
    "apt-cache": _packages,
    "dpkg": _packages,
    "yum": _packages,
    "dnf": _packages,
    "zypper": _packages,
    "apk": _packages,
    "pacman": _packages,
    "brew": _packages,
    "snap": _packages,
    "pip": _packages,
    "pip3": _packages,
    "pipx": _packages,
    "uv": _packages,
    "npm": _packages,
    "gem": _packages,
    "crontab": _crontab,
    "curl": _curl,
    "wget": _wget,
    "tar": _tar,
    "sort": _sort,
    "tee": _tee,
    "dd": _dd,
    "sed": _sed,
    "gsed": _sed,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "nawk": _awk,
    "find": _find,
    "ssh": _ssh,
    "su": _su,
    "sg": _su,
    "watch": _watch,
    "script": _script,
    "trap": _trap,
    "alias": _alias,
    "kill": _kill,
    "pkill": _kill,
    "killall": _kill,
    "chmod": _chmod,
    "chown": _chmod,
    "chgrp": _chmod,
    "date": _date,
    "hostname": _hostname,
    "hostnamectl": _hostname,
    "journalctl": _journalctl,
    "dmesg": _dmesg,
    "ip": _ip,
    "ifconfig": _ip,
    "route": _ip,
    "iptables": _firewall,
    "ip6tables": _firewall,
    "iptables-legacy": _firewall,
    "iptables-nft": _firewall,
    "nft": _firewall,
    "ufw": _firewall,
    "mount": _mount,
    "sysctl": _sysctl,
    "rsync": _rsync,
    "make": _make,
    "gmake": _make,
    "zfs": _zfs,
    "zpool": _zfs,
    "openssl": _openssl,
    "mv": _mv_cp,
    "cp": _mv_cp,
    "printf": _printf,
    "echo": _printf,
    "fuser": _fuser,
    "hdparm": _hdparm,
    "bind": _bind,
    "export": _export_like,
    "nc": _nc,
    "ncat": _nc,
    "netcat": _nc,
    "socat": _nc,
    "vi": _editor,
    "vim": _editor,
    "nvim": _editor,
}


def rule_matches(rule: str, words: list[str]) -> bool:
    """Whether a config rule matches a command: a bare name matches that command with any
    arguments; anything else is a glob over the command's words joined by single spaces."""
    if not words:
        return False
    name = posixpath.basename(words[0]) if "/" in words[0] else words[0]
    if " " not in rule and not _GLOB.search(rule):
        return name == rule or words[0] == rule
    text = " ".join([name, *words[1:]])
    return fnmatch.fnmatchcase(text, rule) or fnmatch.fnmatchcase(" ".join(words), rule)
