"""How typed keys are written down (audit log, daemon log): never a secret's text.

Text typed while the terminal asks a secret kind of question (password, passphrase, one-time
code, PIN, API token, "Secret:" ...), and text that looks like a secret by itself (an assignment
like `TOKEN=x`, or one long word mixing letters, digits and symbols), is recorded as its length
and the first hex digits of its SHA-256: enough to tell whether the same value was typed twice, or
to check a known value, and nothing to read back. Key names (Enter, C-c) stay as they are.

This is the one function deciding it (`record_keys`); everything that records keys calls it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sshkeep.common.logs import mask_text
from sshkeep.common.terminal.keys import is_key_name

# Question kinds (sshkeep.common.terminal.questions) whose answer is a secret.
SECRET_QUESTION_KINDS = frozenset({"password", "passphrase", "otp", "secret"})
HASH_PREFIX = 12  # hex digits of SHA-256 kept
MAX_ITEMS = 50

_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"), re.compile(r"[^A-Za-z0-9]"))


def fingerprint(text: str) -> str:
    """`<secret: N chars, sha256:abcdef012345>` for `text`."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_PREFIX]
    return f"<secret: {len(text)} chars, sha256:{digest}>"


def looks_secret(text: str) -> bool:
    """Whether `text` reads like a secret on its own: a masked assignment or option, or one long
    word of mixed character classes (a generated password or token)."""
    if mask_text(text) != text:
        return True
    word = text.strip()
    if len(word) < 12 or any(c.isspace() for c in word) or "/" in word:
        return False
    return sum(1 for cls in _CLASSES if cls.search(word)) >= 3


def record_keys(keys: list[Any], secret_question: bool) -> list[Any]:
    """A loggable copy of send_keys' `keys`: key names kept, secret text fingerprinted, other text
    kept (with secrets inside it masked); at most MAX_ITEMS items."""
    out: list[Any] = []
    for item in keys[:MAX_ITEMS]:
        if not isinstance(item, str):
            out.append(f"<{type(item).__name__}>")
        elif is_key_name(item):
            out.append(item)
        elif secret_question or looks_secret(item):
            out.append(fingerprint(item))
        else:
            out.append(mask_text(item[:4096]) + (f"… [{len(item)} chars]" if len(item) > 4096 else ""))
    if len(keys) > MAX_ITEMS:
        out.append(f"… [{len(keys)} items]")
    return out
