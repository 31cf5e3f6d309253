"""The lines typed after login that integrate the remote shell.

They are POSIX sh at the top level and hand shell-specific code to `eval`, so bash, zsh, dash and
busybox ash all parse them. Markers are written with printf escapes (`\\033`), so the echoed line
never contains a raw marker; the ESC byte exists only when a prompt is printed. User prompt hooks
are chained, never replaced, and typing the setup again (a shell that replaced itself, a nested
shell) re-points the hooks at the new nonce instead of stacking a second copy.

History: the first line (it holds no nonce) switches bash's history list off and zsh's
`hist_ignore_space` on before any line holding the nonce is read; the last line switches bash's
history back on if it was on. dash and busybox ash cannot switch theirs off: there the first line
reads the other lines itself (`read` from the tty, so their line editor never sees them). So the
nonce never reaches `~/.bash_history`, `~/.zsh_history`, `~/.ash_history` or an in-memory history
list, whatever `HISTCONTROL`, `HISTIGNORE` or the user's zsh options say. History expansion (`!`)
is switched off in bash and zsh: command text is data.

A user's `trap … DEBUG` (bash, zsh) would fire for sshkeep's own prompt hooks and print into the
output of every later command; the prompt hook sets such a trap again, wrapped so that it skips
sshkeep's hooks (and keeps `$?`). It still fires for the user's own commands, as it would
without sshkeep.
"""

from __future__ import annotations

import re

_NONCE = re.compile(r"^[0-9a-f]{8,32}$")

PAGER_ENV = "PAGER=cat GIT_PAGER=cat SYSTEMD_PAGER= MANPAGER=cat GIT_EDITOR=: LESS=-FR SYSTEMD_COLORS=0"

SHELLS_WITH_HOOKS = frozenset({"bash", "zsh"})
# dash and ash have no pre-exec hook: the typed command is prefixed with this function's call.
START_FUNCTION = "__sk_c"

# Holds no nonce: this line may land in history before history is off. dash and busybox ash
# have no way to switch their history list off, so there this line reads the three lines after
# it with `read` (from the tty, never through the line editor and its history) and runs the last
# (the one for them). Input that is not a tty (a pipe) may be read ahead by the shell: typed as is.
_HISTORY_OFF = (
    ' [ -n "$BASH_VERSION" ] && { [[ -o history ]] && __sk_ho=1; set +o history; }; '
    '[ -n "$ZSH_VERSION" ] && setopt hist_ignore_space; '
    '[ -t 0 ] && case "$BASH_VERSION$ZSH_VERSION:$(readlink /proc/$$/exe 2>/dev/null)" in '
    ":*/busybox|:*/dash) "
    'IFS= read -r __sk_l; IFS= read -r __sk_l; IFS= read -r __sk_l; eval "$__sk_l"; unset __sk_l;; esac; :'
)


def setup_lines(nonce: str, seq: int = 0) -> list[str]:
    """The setup commands for one session; each starts with a space.

    `seq` is where a new shell's prompt numbers start: a shell that replaced an integrated one
    (`exec bash`) counts on from the old one's last prompt, so its prompts are never taken for
    replays of old ones.

    Short lines rather than one long one: busybox ash cuts input lines at 1024 bytes. The last
    line prints the X marker, so the first D marker after it means the shell is integrated and idle.
    """
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be lowercase hex")
    # Typed again into a shell that has a count of its own (a nested shell's parent), the count
    # given wins: it is above every prompt number seen so far.
    count = f"__sk_n={int(seq)}" if seq > 0 else "__sk_n=${__sk_n:-0}"
    d = "\\033]133;D;%s;sk=%s:%s\\007"
    bash = (
        f"__sk_k={nonce}; {count}; set +H; "
        f"__sk_pc() {{ local r=$?; __sk_n=$((__sk_n+1)); "
        f'printf "{d}" "$r" "$__sk_k" "$__sk_n"; return $r; }}; '
        # A user's DEBUG trap fires before `__sk_pc` and would print into every output: once seen,
        # it is set again wrapped so that it skips sshkeep's commands (keeping `$?`). The check
        # runs after the D marker, in a function traced (`-t`) so that it sees the trap.
        "__sk_dg() { local r=$? t; t=$(trap -p DEBUG); if [[ -n $t && $t != *__sk_dt* ]]; then "
        'eval "set -- $t"; __sk_dt=$3; '
        "trap -- '__sk_dq=$?; case $BASH_COMMAND in __sk_*) ;; "
        '*) __sk_rs $__sk_dq; eval -- "$__sk_dt";; esac\' DEBUG; fi; return $r; }; declare -ft __sk_dg; '
        "__sk_rs() { return $1; }; "
        '__sk_cm=$(printf "\\033]133;C;sk=%s\\007" "$__sk_k"); '
        '__sk_pm=$(printf "\\033]133;P;sk=%s\\007" "$__sk_k"); '
        'case ";$PROMPT_COMMAND;" in *";__sk_pc;"*) ;; '
        '*) PROMPT_COMMAND="__sk_pc;__sk_dg${PROMPT_COMMAND:+;$PROMPT_COMMAND}";; esac; '
        'case "$PS0" in *__sk_cm*) ;; *) PS0="\\${__sk_cm}$PS0";; esac; '
        'case "$PS2" in *__sk_pm*) ;; *) PS2="\\[\\${__sk_pm}\\]$PS2";; esac'
    )
    zsh = (
        f"__sk_k={nonce}; {count}; setopt no_bang_hist; "
        # A user's DEBUG trap fires for every command of sshkeep's hooks too (they are functions):
        # the first sublist of the prompt hook sets it again wrapped, so that it skips commands run
        # while one of sshkeep's functions is on the stack. It is one sublist, as zsh runs a DEBUG
        # trap once per sublist: the unwrapped trap fires once, into the output of the command
        # that set it.
        '__sk_precmd() { local r=$? t=${(M)${(f)"$(trap)"}:#trap -- * DEBUG} '
        "&& [[ -n $t && $t != *__sk_dt* ]] && __sk_dt=${(Q)${${t#trap -- }% DEBUG}} "
        "&& trap -- '__sk_dq=$?; (( ${funcstack[(I)__sk_*]} )) || "
        '{ __sk_rs $__sk_dq; eval -- "$__sk_dt"; }\' DEBUG; '
        f'__sk_n=$((__sk_n+1)); printf "{d}" "$r" "$__sk_k" "$__sk_n"; }}; __sk_rs() {{ return $1; }}; '
        '__sk_preexec() { printf "\\033]133;C;sk=%s\\007" "$__sk_k"; }; '
        "precmd_functions=(__sk_precmd ${precmd_functions:#__sk_precmd}); "
        "preexec_functions=(__sk_preexec ${preexec_functions:#__sk_preexec}); "
        "unsetopt prompt_sp; "
        # zle mangles typed non-ASCII under a C/POSIX locale; C.UTF-8 fixes it where it exists.
        "[[ $(locale charmap 2>/dev/null) != UTF-8 ]] && "
        'locale -a 2>/dev/null | grep -qixE "c\\\\.utf-?8" && export LC_CTYPE=C.UTF-8; '
        '__sk_p2=${__sk_p2-$PS2}; PS2="%{$(printf "\\033]133;P;sk=%s\\007" "$__sk_k")%}$__sk_p2"'
    )
    # dash and ash expand `$((...))`, `$?` and variables in PS1 at print time in the shell itself;
    # the ESC and BEL bytes come from printf here, so only the variables (never the echo) hold them.
    posix = (
        f"export {PAGER_ENV}; __sk_sh=$BASH_VERSION$ZSH_VERSION; "
        f'if [ -z "$__sk_sh" ]; then __sk_k={nonce}; {count}; '
        '__sk_c() { __sk_s=$?; printf "\\033]133;C;sk=%s\\007" "$__sk_k"; return "${1:-$__sk_s}"; }; '
        " __sk_e=$(printf '\\033'); __sk_b=$(printf '\\007'); "
        'case "$PS1" in *__sk_k*) ;; '
        '*) PS1="${__sk_e}]133;D;\\$?;sk=\\${__sk_k}:\\$((__sk_n+=1))${__sk_b}$PS1";; esac; '
        'case "$PS2" in *__sk_k*) ;; *) PS2="${__sk_e}]133;P;sk=\\${__sk_k}${__sk_b}$PS2";; esac; '
        'case "$(readlink /proc/$$/exe 2>/dev/null)" in *busybox*) __sk_sh=ash;; *dash*) __sk_sh=dash;; '
        "*) __sk_sh=sh;; esac; "
        'elif [ -n "$BASH_VERSION" ]; then __sk_sh=bash; else __sk_sh=zsh; fi; '
        f'printf "\\033]133;X;sk=%s;sh=%s\\007" {nonce} "$__sk_sh"; '
        '[ -n "$__sk_ho" ] && set -o history; :'
    )
    return [
        _HISTORY_OFF,
        f" [ -n \"$BASH_VERSION\" ] && eval '{_single(bash)}'",
        f" [ -n \"$ZSH_VERSION\" ] && eval '{_single(zsh)}'",
        f" {posix}",
    ]


def _single(code: str) -> str:
    """`code` for use inside a single-quoted sh word."""
    return code.replace("'", "'\\''")
