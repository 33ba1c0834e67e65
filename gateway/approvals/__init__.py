"""The human approval queue: high-stakes actions wait for a reviewer (docs/architecture.md).

component.py       Approvals: the component (settings + approvals.yaml, store, service, stages)
config.py          ApprovalSettings: the ``approvals`` section
stage.py           approval_request / approval_response: hold, defer, re-send, streams
service.py         ApprovalService (Approvals.service): create, join, decide, wait
effects.py         what every change causes: audit record, metrics, webhooks; apply a change
open_index.py      the joinable view: pending approvals by key and ask, from the change feed
feed.py            subscribers to the change feed (the admin SSE stream), bounded
sealed.py          the held answer and the real values, sealed beside the record
sweep.py           the expiry sweep (one replica per interval), purge, pending gauge
rules.py           the state machine as pure changes: four-eyes, groups, N approvers, expiry
store.py           ApprovalStore interface (CAS-based update, paged listing, change feed)
redis_store.py     Redis: Lua writes that publish, pub/sub wake-ups across replicas
memory.py          in-process store (embedded default)
model.py           the Approval record (never holds the model's answer)
crypto.py          Fernet sealing of held answers
reveal.py          who sees a held tool call's real values: its reviewers, nobody else
spec.py            policy require_approval items → one approval's parameters
fingerprint.py     the normalised request hash a defer re-send must match
answers.py         tool calls of an answer, denial rewrite, synthesized answers
stream_answers.py  the same for SSE streams: classify, assemble, rewrite, replay
replay.py          the ModelResponse a re-send gets (stored, or rewritten for a denial)
waiters.py         requests held in this process, woken by the change feed
webhooks.py        signed, retried webhook deliveries per approver group
metrics.py         Prometheus metrics on the app's registry
tasks.py           stopping background tasks when a library swallows cancellation
api.py             /admin/approvals (+ SSE stream) and /v1/approvals/{id}
cli.py             wardgate approvals list|show|approve|deny
"""
