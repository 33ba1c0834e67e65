"""Run as a process by ``test_policy_engine_threads.py``: a gateway served from a thread (as
the test harness serves them, one after another in one process), its policies reloaded N
times, stopped, then everything it left collected by the main thread.

regorus engines are pyo3 ``unsendable``: one dropped on a thread other than its builder's is
leaked with "regoruspy::Engine is unsendable, but is being dropped on another thread" on
stderr. Prints one JSON line: the regorus objects held after each reload, after the stop and
at the end (``native_objects_held``).
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from pathlib import Path

import httpx

from gateway.policy.engines.embedded import native_objects_held
from tests.harness import ADMIN_KEY, gateway_settings, running_gateway


def main(reloads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="wardgate-engine-threads-") as tmp:
        root = Path(tmp)
        # No file watcher: each admin reload is the one that loads the new revision.
        settings = gateway_settings(root, "http://127.0.0.1:9", policy={"watch": False})
        held = []
        with running_gateway(settings) as served:
            for n in range(reloads):
                (settings.rego_dir / "reloaded.rego").write_text(
                    f"package wardgate.reloaded\n\nround := {n}\n"
                )
                answer = httpx.post(
                    served.url + "/admin/policies/reload",
                    headers={"authorization": f"Bearer {ADMIN_KEY}"},
                    timeout=60,
                )
                assert answer.json()["result"] == "loaded", answer.text
                held.append(native_objects_held())
        after_stop = native_objects_held()
        del served
        # What the gateway froze at start (gc.freeze, gateway/app.py) becomes collectable, as
        # the next gateway of a process (or an unfrozen heap) would collect it: on this thread.
        gc.unfreeze()
        gc.collect()
        print(json.dumps({"after_reload": held, "after_stop": after_stop, "at_end": native_objects_held()}))
        sys.stdout.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
