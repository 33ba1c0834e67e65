"""Anchors in S3-compatible object storage: one write-once (and object-locked) object each.

``audit.anchor_to: s3://bucket/prefix`` with ``audit.anchor_s3`` (endpoint, region, the names
of the environment variables holding the credentials, object lock) writes each anchor as a new
object ``<prefix>anchor-<ns>-<rand>.json``:

- ``If-None-Match: *``: the store refuses to replace an object of that name (write-once even
  without object lock, where the server supports conditional writes);
- with ``object_lock_days``: ``x-amz-object-lock-mode`` (COMPLIANCE by default: nobody, the
  bucket owner included, may delete or overwrite it before the date) and the retain-until
  date, with the ``Content-MD5`` S3 requires for locked writes. A bucket created without
  object lock refuses such a write, and the error says so: the anchor is not silently
  written unlocked.

``verify --anchors s3://bucket/prefix`` lists the prefix (ListObjectsV2, paged) and reads
every ``anchor-*.json`` back. Requests are signed with AWS Signature V4 here, over the
standard library's HTTP client, run in a thread: a whole SDK (botocore, ~20 MB, ~0.2 s to
import) for three requests was not worth its weight. tests/audit/test_audit_anchor_s3.py
checks the signature against botocore's and runs against a real S3 server (moto).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from xml.etree import ElementTree

from pydantic import BaseModel, Field

_TIMEOUT_S = 10.0
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class AnchorS3Settings(BaseModel):
    """``audit.anchor_s3``: where an ``s3://bucket/prefix`` anchor destination lives."""

    #: The S3 API's base URL (AWS: ``https://s3.<region>.amazonaws.com``; MinIO, Ceph, R2...).
    endpoint: str = "https://s3.amazonaws.com"
    region: str = "us-east-1"
    #: Names of the environment variables holding the credentials (never the values here).
    access_key_env: str = "WARDGATE_ANCHOR_S3_ACCESS_KEY"
    secret_key_env: str = "WARDGATE_ANCHOR_S3_SECRET_KEY"
    session_token_env: str = "WARDGATE_ANCHOR_S3_SESSION_TOKEN"
    #: Lock each anchor object for this many days (the bucket must have object lock enabled);
    #: None = write-once by name only (``If-None-Match``), deletable by whoever may delete.
    object_lock_days: float | None = Field(default=365.0, gt=0)
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"


class S3AnchorError(RuntimeError):
    """An S3 request failed (the message names the endpoint and bucket, never a credential)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def credentials(s: AnchorS3Settings, env: Mapping[str, str] | None = None) -> Credentials:
    env = os.environ if env is None else env
    access, secret = env.get(s.access_key_env), env.get(s.secret_key_env)
    if not access or not secret:
        raise S3AnchorError(
            f"S3 anchors at {s.endpoint} need credentials: set ${s.access_key_env} and ${s.secret_key_env}"
        )
    return Credentials(access, secret, env.get(s.session_token_env) or None)


def split_spec(spec: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix/``)."""
    rest = spec.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise S3AnchorError(f"anchor destination {spec}: no bucket (s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _quote(s: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(s, safe=safe)


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    payload_hash: str,
    creds: Credentials,
    region: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """AWS Signature V4 (service ``s3``): the headers to send, ``Authorization`` included."""
    now = now or dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urllib.parse.urlsplit(url)
    out = {k.lower(): v.strip() for k, v in headers.items()}
    out["host"] = parts.netloc
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    if creds.session_token:
        out["x-amz-security-token"] = creds.session_token
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query)
    names = sorted(out)
    canonical = "\n".join(
        [
            method,
            _quote(urllib.parse.unquote(parts.path) or "/", safe="/-_.~"),
            canonical_query,
            "".join(f"{n}:{out[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{creds.secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


class S3Anchors:
    """The three requests anchors need, path-style (works with AWS, MinIO, Ceph, moto...)."""

    def __init__(self, spec: str, settings: AnchorS3Settings, env: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.bucket, self.prefix = split_spec(spec)
        self.creds = credentials(settings, env)
        self.base = settings.endpoint.rstrip("/")

    def _request(
        self,
        method: str,
        key: str = "",
        query: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> bytes:
        url = f"{self.base}/{_quote(self.bucket)}/{_quote(key, safe='/-_.~')}" + (
            f"?{query}" if query else ""
        )
        signed = sign(
            method,
            url,
            headers or {},
            hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256,
            self.creds,
            self.settings.region,
        )
        req = urllib.request.Request(url, data=body or None, method=method, headers=signed)
        where = f"S3 anchors at {self.base} (bucket {self.bucket})"
        try:
            with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc.read())
            raise S3AnchorError(f"{where}: {method} {key or '/'} answered {exc.code} {detail}") from None
        except OSError as exc:  # refused, DNS, timeout: the endpoint is unreachable
            reason = getattr(exc, "reason", exc)
            raise S3AnchorError(f"{where} unreachable: {reason}") from None

    def put(self, body: bytes) -> str:
        """Write one new anchor object (never replacing one); returns its key."""
        key = f"{self.prefix}anchor-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        headers = {
            "content-type": "application/json",
            "if-none-match": "*",
            "content-md5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
        }
        s = self.settings
        if s.object_lock_days is not None:
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=s.object_lock_days)
            headers["x-amz-object-lock-mode"] = s.object_lock_mode
            headers["x-amz-object-lock-retain-until-date"] = until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self._request("PUT", key, body=body, headers=headers)
        return key

    def keys(self) -> list[str]:
        """Every anchor object under the prefix (ListObjectsV2, all pages), in name order."""
        out: list[str] = []
        token: str | None = None
        while True:
            q = {"list-type": "2", "prefix": f"{self.prefix}anchor-"}
            if token:
                q["continuation-token"] = token
            root = ElementTree.fromstring(self._request("GET", query=urllib.parse.urlencode(q)))
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            out += [k.text or "" for k in root.iter(f"{ns}Key")]
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                return sorted(k for k in out if k.endswith(".json"))

    def get(self, key: str) -> bytes:
        return self._request("GET", key)


def _error_text(body: bytes) -> str:
    """``Code: Message`` of an S3 error document (bounded; never the request)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return body[:200].decode(errors="replace")
    code, msg = root.findtext("Code") or "", root.findtext("Message") or ""
    return f"{code}: {msg}"[:300]
