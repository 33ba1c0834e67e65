"""What redaction may do to a text field: the treatments the field table assigns.

Kept apart from the table (``field_rows.py``) and its compiled form (``fields.py``) so
both can name them; ``fields.py``'s docstring says what each one means for a value.
"""

from __future__ import annotations

from enum import StrEnum


class Treat(StrEnum):
    SCAN = "scan"
    JSON = "json"
    TOOL = "tool"
    URL = "url"
    ANY = "any"
    LOGPROBS = "logprobs"
    OPAQUE = "opaque"
    KEEP = "keep"
    #: Stream padding (``obfuscation``): a string becomes a fresh random pad of its length
    #: (``pad.py``, in the stream rewriters); anything else, or a string a walker meets, is
    #: scanned.
    PAD = "pad"
    #: A structural key anywhere (``id``, ``type``, ...): a string there is kept, an object or
    #: a list is still walked.
    STRUCT = "struct"


#: Treatments that cover a whole subtree: nothing below is looked up again.
SUBTREE = frozenset({Treat.ANY, Treat.LOGPROBS, Treat.OPAQUE, Treat.KEEP})

#: What a reader of the README is told per treatment.
MEANING = {
    Treat.SCAN: "scanned",
    Treat.JSON: "scanned as JSON (numbers become string placeholders)",
    Treat.TOOL: "scanned as JSON; restored only for types with `tool_arguments`",
    Treat.URL: "scanned percent-decoded (userinfo, host, path, query, fragment); `data:` is opaque",
    Treat.ANY: "every string value below scanned",
    Treat.LOGPROBS: "dropped when redaction changed the text; in answers also unless the tokens spell it and no alternative has a finding (`logprob_check.py`)",
    Treat.OPAQUE: "opaque: counted `unscanned`, or refused by config (`opaque_fields: refuse`)",
    Treat.KEEP: "structure, passed",
    Treat.PAD: "in a stream: replaced by a fresh random pad of the same length, never passed; not a string, or in a whole answer: scanned",
    Treat.STRUCT: "structure, passed",
}
