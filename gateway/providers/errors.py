"""A provider's error answers become the gateway's own errors; the provider's text stays here.

Why: a provider's error text is not written for the gateway's callers. A 401/403 is about the
gateway's own credentials and can quote a fragment of its key ("Incorrect API key provided:
sk-proj-****abcd"); a 5xx body can carry internal hostnames or stack traces; a 429 names the
gateway's organisation and quota. So:

- 401, 403, 407: ``UpstreamAuthFailed`` (502 ``upstream_auth_failed``), a generic message;
- 5xx: ``UpstreamError`` (502), a generic message with the upstream status;
- 429: ``UpstreamRateLimited``, a generic message, the retry headers passed on;
- other 4xx (the request's own fault: bad parameter, unknown model, context too long):
  ``UpstreamRejected`` with the provider's message and ``param``, sanitised: cut to
  ``MAX_MESSAGE`` characters, control and format characters removed, the deployment's key
  (and any 8-character run of it) and anything shaped like a key or token replaced;
- an error event inside a stream: ``UpstreamError`` with a generic message.

The provider's own text goes to the log, with the request id, after the same key scrubbing
and with anything shaped like an e-mail address or a long number (phone, card, account) masked:
a provider's message may quote the prompt or the answer, and the log must not keep PII.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import orjson

from gateway.audit.scrub import REDACTED, scrub_text
from gateway.errors import UpstreamAuthFailed, UpstreamError, UpstreamRateLimited, UpstreamRejected

log = logging.getLogger("wardgate.providers")

MAX_MESSAGE = 300
_MAX_LOGGED = 1000
#: A fragment of the deployment's key at least this long is treated as the key itself.
_KEY_FRAGMENT = 8
_AUTH_STATUSES = frozenset({401, 403, 407})
#: Provider error codes and params relayed as they are: short, plain tokens only.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]{0,63}")
_SPACES = re.compile(r"\s+")
#: What a logged provider message must not keep: an e-mail address, a run of 7+ digits (with
#: the usual separators: phones, cards, accounts, SSNs).
_LOG_PII = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+|\+?\d(?:[\d \-.()/]{5,}\d)")


def status_error(
    status: int, body: bytes, headers: Any, name: str, secrets: tuple[str, ...], request_id: str
) -> UpstreamError:
    """The gateway's error for a provider answer with HTTP ``status`` >= 400."""
    message, code, param = _fields(body)
    log.warning(
        "upstream %s answered HTTP %d: code=%s message=%s",
        name,
        status,
        code,
        _logged(message, secrets, _MAX_LOGGED) or _logged(body.decode("utf-8", "replace"), secrets, 200),
        extra={"request_id": request_id},
    )
    if status in _AUTH_STATUSES:
        return UpstreamAuthFailed(
            f"The model provider refused the gateway's credentials (HTTP {status}). This is a gateway "
            "configuration problem, not a problem with your request or your key; the operator finds the "
            "provider's answer in the gateway log under this request's id.",
            upstream_status=status,
        )
    if status == 429:
        passed = {h: headers[h] for h in ("retry-after", "retry-after-ms") if h in headers}
        hint = f" (provider code: {code})" if code else ""
        return UpstreamRateLimited(
            f"The model provider is rate limiting the gateway for this model{hint}; retry later.",
            headers=passed,
            upstream_status=status,
        )
    if status >= 500:
        return UpstreamError(f"The model provider failed with HTTP {status}.", upstream_status=status)
    text = scrub(message, secrets, MAX_MESSAGE)
    detail = f": {text}" if text else "."
    safe_param = param if param is not None and _PARAM.fullmatch(param) else None
    return UpstreamRejected(
        f"The model provider rejected the request (HTTP {status}){detail}",
        status=status,
        param=safe_param,
        upstream_status=status,
    )


def stream_error(obj: dict[str, Any], name: str, secrets: tuple[str, ...], request_id: str) -> UpstreamError:
    """The gateway's error for an error event the provider sent inside a stream."""
    err = _v if isinstance(_v := obj.get("error"), dict) else obj
    message = _v if isinstance(_v := err.get("message"), str) else ""
    code = err.get("code") if isinstance(err.get("code"), str) and _CODE.fullmatch(err["code"]) else None
    log.warning(
        "upstream %s sent an error event mid-stream: code=%s message=%s",
        name,
        code,
        _logged(message, secrets, _MAX_LOGGED),
        extra={"request_id": request_id},
    )
    hint = f" (provider code: {code})" if code else ""
    return UpstreamError(f"The model provider failed during the stream{hint}.", upstream_status=200)


def _fields(body: bytes) -> tuple[str, str | None, str | None]:
    """The provider's error message, code (a plain token, else None) and param."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None, None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, str):
        return err, None, None
    if not isinstance(err, dict):
        return "", None, None
    message = _v if isinstance(_v := err.get("message"), str) else ""
    code = err.get("code") if isinstance(err.get("code"), str) and _CODE.fullmatch(err["code"]) else None
    param = _v if isinstance(_v := err.get("param"), str) else None
    return message, code, param


def scrub(text: str, secrets: tuple[str, ...], limit: int) -> str:
    """``text`` made safe to show or log: one line of printable characters, at most ``limit``
    long, with no run of the deployment's secrets (its key, its configured header values) and
    nothing shaped like a key or token."""
    if not text:
        return ""
    text = text[: limit * 4]
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    for secret in secrets:
        text = _without(text, secret)
    text = scrub_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _logged(text: str, secrets: tuple[str, ...], limit: int) -> str:
    """``scrub`` for the log: also no e-mail address or long number (see the module's doc)."""
    return _LOG_PII.sub(
        lambda m: REDACTED if sum(c.isdigit() for c in m[0]) >= 7 or "@" in m[0] else m[0],
        scrub(text, secrets, limit),
    )


def _without(text: str, secret: str) -> str:
    if secret in text:
        text = text.replace(secret, REDACTED)
    for i in range(len(secret) - _KEY_FRAGMENT + 1):
        fragment = secret[i : i + _KEY_FRAGMENT]
        if fragment in text:
            text = text.replace(fragment, REDACTED)
    return text
