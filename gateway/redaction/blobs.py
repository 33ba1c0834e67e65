"""A base64 ``blob`` (an MCP resource's contents) as the text it carries, and back.

A server may hand a document over as ``{"uri", "mimeType", "blob": <base64>}`` instead of
``text``; a client decodes it and the model reads it, so a card number in it is a card number
the model reads. Redaction therefore reads the decoded text: the ``charset`` the mimeType
names, else the byte-order mark's encoding, else UTF-8 (strict), else, for a text-like
mimeType (``text/*``, JSON, XML, YAML, CSV, JavaScript, ``+json``/``+xml``), Latin-1 (every
byte is a character: a text type is read as text whatever its bytes). A redacted text is
re-encoded in the same encoding (a BOM kept). Bytes that none of these reads (an image, a zip)
are *opaque*: the caller decides what to do with them (``mcp.binary_blobs``).
"""

from __future__ import annotations

import base64
import binascii
import codecs

#: Byte-order marks → the codec that reads the text after them (and writes the mark back).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_TEXT_SUBTYPES = (
    "json",
    "xml",
    "yaml",
    "x-yaml",
    "csv",
    "javascript",
    "ecmascript",
    "x-sh",
    "sql",
    "graphql",
)


class Decoded:
    """A blob's text and how to write a changed text back as base64."""

    __slots__ = ("encoding", "text")

    def __init__(self, text: str, encoding: str) -> None:
        self.text = text
        self.encoding = encoding

    def encode(self, text: str) -> str:
        return base64.b64encode(text.encode(self.encoding)).decode("ascii")


def decode(blob: str, mime_type: object) -> Decoded | None:
    """``blob``'s text, or None when the bytes are not text (or not base64)."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    mime = mime_type.lower() if isinstance(mime_type, str) else ""
    charset = _charset(mime)
    if charset is not None:
        try:
            codecs.lookup(charset)
            return Decoded(raw.decode(charset), charset)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong label: read the bytes as below
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return Decoded(raw.decode(codec), codec)
            except UnicodeDecodeError:
                break
    try:
        return Decoded(raw.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    if _text_like(mime):
        return Decoded(raw.decode("latin-1"), "latin-1")
    return None


def _charset(mime: str) -> str | None:
    for param in mime.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def _text_like(mime: str) -> bool:
    essence = mime.split(";")[0].strip()
    kind, _, subtype = essence.partition("/")
    if kind == "text":
        return True
    return subtype.endswith(("+json", "+xml")) or subtype in _TEXT_SUBTYPES
