"""The tamper-evident audit log: one event per call, approval change, admin action, policy revision.

Layout (one job per module):

    config.py        AuditSettings (backend, group commit, checkpoints, retention)
    schema.py        event version, canonical JSON, chain hash, ids, index columns
    events.py        build an event from a finished Call / from record(kind, payload)
    scrub.py         secrets and content never reach an event from record()
    chain.py         one hash chain per process (shard); sealing
    writer.py        group commit: record() returns when the event is durable
    service.py       AuditService: record(), checkpoints (witnesses), retention, readiness
    retention.py     prune with attested anchors
    verify.py        walk the chains, report the first broken link
    verify_api.py    POST /admin/audit/verify: verify in a worker thread, one at a time, audited
    lease.py         chain leases: a chain is judged dead by the lease it declared
    columns.py       verify: which stored column differs from the sealed event
    ends.py          verify: a chain's end against its head row (re-read on a live store); page prefetch
    signing.py       Ed25519 keys: sign checkpoints and anchors (key never in the database)
    anchors.py       signed anchors: write to / read from a file, directory, webhook or S3
    anchor_s3.py     S3-compatible anchors: SigV4-signed write-once, object-locked PUTs
    anchor_check.py  verify --anchors: hold the chains to the signed heads
    store/           AuditStore: sqlite (embedded default), postgres (append-only roles), log
    stage.py         the "audit" stage: event + metrics + trace from one finish hook
    spend.py         the settled-spend report (served as /admin/spend/report by the limits API)
    query.py         query-string parsing: strict types, opaque cursors, time windows
    export.py        streamed JSONL / CSV exports in bounded memory
    timeline.py      the run timeline: every event of an agent run, in order
    why.py           a policy decision's "why": its effects and a content-free input summary
    capture.py       opt-in content capture: redacted messages and answer, outside the chain
    explore.py       console read models: run search, sub-runs, spend series
    api.py           /admin/audit, /admin/audit/export, /admin/audit/{id}, /admin/runs/{id}
    component.py     Audit: the component (service, stage, readiness, routes, CLI)
    cli.py           wardgate audit tail|query|export|verify
    cli_target.py    the store a CLI command opens (settings + overrides)
    anchor_cli.py    wardgate audit anchor|keygen
    roles_cli.py     wardgate audit grant|prune: the append-only two-role PostgreSQL deployment
    jsonl_source.py  verify an exported or logged JSONL stream offline (verify --file)
    runs_cli.py      wardgate runs show RUN_ID

Event schema, version 1 (``"v": 1``). Every event has ``v``, ``id`` (time-ordered), ``kind``,
``ts`` (epoch seconds; for calls the call's start), ``time`` (ISO 8601 UTC), and the chain
fields ``shard``, ``seq``, ``prev_hash``, ``hash``. A ``call`` event adds::

    request_id, trace_id
    principal   {key_id, team, user}                     never the key
    agent       {id, run_id, parent_run_id}
    endpoint, stream
    model       {requested, used, routed, deployment}
    decision    allow | deny | pending | error           (the summary the filters use)
    decisions   [{stage, phase, outcome, reasons, revision, detail?, why?}]
                why (policy stages): {engine, effects, input: summary, never content}
    redaction   {entities: {TYPE: n}, locations: [{path, type, count}], unscanned}
    approval    {id, status, reviewer, comment, phase, reasons, tool_call_ids}
    tool_calls  [{id, name}]                              never the arguments
    finish_reason
    usage       {input_tokens, output_tokens, cached_tokens}
    cost        {settled_usd, settled_nusd, reserved_usd}
    latency_ms  {total, stages: {stage: ms}}
    upstream    {status, retries}
    status      HTTP status the client got
    error       {class, type, code, status}               never the message
    client_disconnected
    capture     {hash, bytes} of the stored capture | {refused: reason}   (opt-in only)

Other kinds (``approval``, ``admin``, ``policy``...) carry the caller's payload under ``data``
(secret-looking values and content fields replaced) with identity fields lifted into
``principal`` / ``agent`` / ``model`` so the same filters find them. Chain kinds:
``chain_open`` (``data.instance``, ``data.predecessor``, ``data.witness``: other chains'
heads), ``checkpoint`` (``data.witness``; ``data.head``: its own chain's head, ``data.sig``:
its signature when a key is set), ``chain_abandoned`` (``data``: the dead chain's shard, seq,
hash), ``retention`` (``data.anchors``), ``chain_close``. See docs/audit.md.
"""
