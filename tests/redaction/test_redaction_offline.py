"""Presidio runs offline: no socket is opened, no download is attempted, no network error is
logged, and the e-mail validator still works (from tldextract's bundled suffix list)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter: nothing imported before the gateway, an audit hook on every network
# operation (resolving, connecting, sending), and every log record captured.
PROBE = r"""
import json, logging, sys, time
events = []
NETWORK = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
           "socket.sendto", "socket.sendmsg", "urllib.Request", "http.client.connect")
def hook(name, args):
    # (urllib3 binds a socket to ::1 at import to probe IPv6 support: local, not network.)
    if name in NETWORK:
        events.append(name)
sys.addaudithook(hook)
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name}:{record.levelname}:{record.getMessage()}")
logging.basicConfig(level=logging.DEBUG, handlers=[Keep()])

t0 = time.perf_counter()
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
redactor = build(RedactionSettings())
t1 = time.perf_counter()
spans = redactor.engine.detect("write to jürgen.müller@example.co.uk or bob@mail.example.org")
t2 = time.perf_counter()
import os, tldextract
print(json.dumps({
    "env": os.environ.get("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"),
    "suffix_list_urls": list(tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls),
    "socket_events": events,
    "network_logs": [r for r in records if any(w in r.lower() for w in ("http", "urlopen", "connection", "download", "fetch"))],
    "build_s": t1 - t0,
    "first_detect_s": t2 - t1,
    "emails": [s.entity for s in spans],
}))
"""


def test_presidio_never_touches_the_network_and_validates_emails_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["env"] == "", "the gateway sets TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS before importing Presidio"
    assert out["suffix_list_urls"] == [], "tldextract was configured with no URL to fetch"
    assert out["socket_events"] == [], f"sockets were used: {out['socket_events']}"
    assert out["network_logs"] == [], out["network_logs"]
    assert out["emails"] == ["EMAIL_ADDRESS", "EMAIL_ADDRESS"]
    # Warm-up happened in build(): the first real analysis does not pay the ~0.2 s suffix-list load.
    assert out["first_detect_s"] < 0.1, out


def test_an_operator_may_point_tldextract_at_a_local_suffix_list(tmp_path: Path) -> None:
    local = tmp_path / "suffixes.dat"
    local.write_text("com\norg\nuk\nco.uk\n")
    env = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": str(local)}
    code = "import gateway.redaction, os; print(os.environ['TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS'])"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == str(local), "setdefault keeps an operator's own value"
