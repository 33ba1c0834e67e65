"""PII and secret redaction on Presidio, offline (see docs/architecture.md).

``tldextract`` (behind Presidio's e-mail validator) downloads the public suffix list on first
use unless ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` is empty, and it reads the variable once, when
it is first imported. Setting it here, in the package, covers every import path into Presidio
in the gateway: ``gateway.settings`` imports ``gateway.redaction.config`` at startup, long before
anything analyses text. ``setdefault`` lets an operator point it at a local copy of the list.
"""

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
