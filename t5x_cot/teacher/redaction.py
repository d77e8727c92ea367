"""Keeping endpoint credentials out of everything the teacher prints, logs and writes.

Two kinds of secret reach the teacher: the API key (from an environment variable) and the
user information of `--base-url` ("http://user:password@host/v1"). `check_api_key` validates
the key before any request (surrounding whitespace, typically the newline of a key read from
a file, is dropped; whitespace or control characters inside it are refused, without showing
it). `split_credentials` removes the user information from the URL. A `Redactor` replaces
every written form of every secret — raw, as `repr` writes it in a str or in bytes, JSON-
and percent-encoded, and as it was before stripping — with "***".
"""
from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterable

from t5x_cot.errors import UserError

MASK = "***"


class CredentialError(UserError, ValueError):
    """An API key or a base URL that cannot be sent as given."""


def check_api_key(raw: str | None, source: str) -> str | None:
    """The key to send: `raw` without surrounding whitespace; None when it is unset or blank.

    Raises CredentialError (naming `source` and the position, never the key) when a
    whitespace or control character, or a character outside printable ASCII, is inside it:
    an HTTP header cannot carry it."""
    if raw is None or not raw.strip():
        return None
    key = raw.strip()
    for position, char in enumerate(key):
        if not "!" <= char <= "~":
            raise CredentialError(
                f"{source}: the API key has a whitespace, control or non-ASCII character "
                f"inside it (character {position + 1} of {len(key)}, U+{ord(char):04X}); an "
                f"HTTP header cannot carry it. Set the variable to the key alone.")
    return key


def split_credentials(url: str) -> tuple[str, list[str]]:
    """(`url` without its user information, the secrets that were in it: the user information
    and its password, as written and percent-decoded)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, []
    userinfo, _, host = parts.netloc.rpartition("@")
    secrets = [userinfo, userinfo.partition(":")[2]]
    secrets += [urllib.parse.unquote(s) for s in secrets]
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), [s for s in secrets if s]


def check_base_url(url: str) -> None:
    """Raise CredentialError unless `url` is an http(s) URL with a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:  # the message would quote the URL's pieces, credentials included
        valid = False
    if not valid:
        raise CredentialError("--base-url must be an http:// or https:// URL with a host and "
                              "an optional numeric port (user information percent-encoded)")


def _forms(secret: str) -> set[str]:
    """Every way `secret` may be written in a message, a log line or a file."""
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1],
             json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret, safe=""), secret.strip()}
    return {form for form in forms if len(form) >= 4}


class Redactor:
    """Replaces every form of the given secrets with MASK; longest first, so a secret that
    contains another is masked whole. Forms shorter than 4 characters are left alone (they
    would mask ordinary text)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _forms(secret)
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        result = str(text)
        for form in self._forms:
            result = result.replace(form, MASK)
        return result


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record it passes (message and arguments merged)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self._redact(message), None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True
