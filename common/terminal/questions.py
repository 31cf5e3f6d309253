"""Recognise a quiet terminal that is waiting for an answer (password, y/n, host key, PS2 …).

Input is rendered plain text (see `sshkeep.common.terminal.render`). The question must be on the
last line and that line must be unterminated, as a waiting prompt always is: a prompt followed by a newline
has been answered already (sudo prints one after the password, then runs a possibly silent
command). Screen captures should have their trailing blank rows removed before calling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = frozenset(
    {"password", "passphrase", "host_key", "confirm", "otp", "secret", "continuation", "fullscreen", "prompt"}
)

_MAX_PROMPT = 200
_LOOKBACK = 8

_HOST_KEY = re.compile(
    r"continue connecting \(yes/no(?:/\[fingerprint\])?\)\?|please type 'yes', 'no' or the fingerprint",
    re.IGNORECASE,
)
_FINGERPRINT = re.compile(r"key fingerprint is \S+", re.IGNORECASE)
_PAGER = re.compile(
    r"^(?::|\(END\)|--More--.*|.*\(press h for help or q to quit\)|lines \d+-\d+.*)$", re.IGNORECASE
)
# [y/N], (yes/no), [yes/no/all], conda's ([y]/n).
_YES_NO = re.compile(r"[\[(]\s*\[?(?:y|yes)\]?\s*/\s*\[?(?:n|no)\]?\s*(?:/[^\])]*)?[\])]", re.IGNORECASE)
_PASSPHRASE = re.compile(r"\bpass ?phrase\b.*:$", re.IGNORECASE)
_OTP = re.compile(
    r"verification code|one[- ]time (?:password|passcode|code)|\botp\b|enter the code|two[- ]factor"
    r"|\b2fa\b|\bmfa\b|passcode|authenticator|security code|token code",
    re.IGNORECASE,
)
_PASSWORD = re.compile(r"\b(?:password|passwd|pin)\b.*:$", re.IGNORECASE)
# Other secrets asked for by name: "Secret:", "API token:", "Vault token:", "Access key:".
_SECRET = re.compile(
    r"\b(?:secret|token|api[ _-]?key|access[ _-]?key|private[ _-]?key|credentials?)\b[^:?]{0,40}:$",
    re.IGNORECASE,
)
_CONFIRM_WORDS = re.compile(
    r"^(?:[\w.-]+: )?(?:continue|proceed|overwrite|replace|remove|delete|are you sure|do you (?:want|wish)"
    r"|really)\b.*\?$"
    r"|^press (?:any key|enter|return)\b",
    re.IGNORECASE,
)
# zsh's PS2 names the open construct ("dquote> ", "for quote> "); bash, dash and ash print "> ".
_CONTINUATION = re.compile(
    r"^(?:(?:quote|dquote|bquote|cmdsubst|subsh|heredoc|for|foreach|while|until|if|then|else|elif"
    r"|case|select|function|cursh|pipe|cmdor|cmdand|array|math|mathsubst|brace|repeat) )*"
    r"(?:quote|dquote|bquote|cmdsubst|subsh|heredoc|for|foreach|while|until|if|then|else|elif"
    r"|case|select|function|cursh|pipe|cmdor|cmdand|array|math|mathsubst|brace|repeat)?>$"
)
# REPLs (>>>, mysql>, (gdb), (Pdb)) and nested shells (root@box:~#, sh-5.2$) wait for input too.
_REPL = re.compile(r"^(?:>>>|[\w.()\[\]:=-]{0,40}[>$#]|\(\w+\)|\S*@\S*[$#]|\[[^\]]*@[^\]]*\][$#])$")
_PROMPT_END = re.compile(r"[?:]$")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Question:
    """What the terminal is asking: ``kind`` is one of ``KINDS``; ``text`` is the question."""

    kind: str
    text: str


def detect_question(tail: str) -> Question | None:
    """Return the question the unterminated last line of ``tail`` asks, or None."""
    lines = tail.split("\n")
    line = lines[-1].strip()
    if not line or len(line) >= _MAX_PROMPT:
        return None
    if _HOST_KEY.search(line):
        return Question("host_key", _with_fingerprint(lines[-_LOOKBACK:-1], line))
    if _PAGER.match(line):
        return Question("fullscreen", line)
    if _YES_NO.search(line) and line[-1] in "])?:>":
        return Question("confirm", line)
    if _PASSPHRASE.search(line):
        return Question("passphrase", line)
    if _OTP.search(line) and (line[-1] in ":?>" or line.lower().startswith("enter")):
        return Question("otp", line)
    if _PASSWORD.search(line):
        return Question("password", line)
    if _SECRET.search(line):
        return Question("secret", line)
    if _CONFIRM_WORDS.search(line):
        return Question("confirm", line)
    if _CONTINUATION.match(line):
        return Question("continuation", line)
    if _PROMPT_END.search(line) and _LETTER.search(line):
        # Duo prints its banner lines above a generic "Passcode or option" style prompt.
        if any("two-factor" in earlier.lower() for earlier in lines[-_LOOKBACK:-1]):
            return Question("otp", line)
        return Question("prompt", line)
    if _REPL.match(line):
        return Question("prompt", line)
    return None


def _with_fingerprint(earlier: list[str], question: str) -> str:
    """Prefix the host key question with ssh's fingerprint line, when the tail holds it."""
    for candidate in reversed(earlier):
        if _FINGERPRINT.search(candidate):
            return f"{candidate.strip()}\n{question}"
    return question
