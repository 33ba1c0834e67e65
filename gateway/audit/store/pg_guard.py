"""Append-only audit tables on PostgreSQL: the triggers (schema v3) and the two roles' grants.

Hash chains make tampering *evident*; this makes it *refused*. The gateway connects as a
**writer** role that may only add events (and move its chain's head forward); retention runs
as a separate **pruner** role that may also delete a prefix of a chain, and only once that
chain's retention anchor (where it now starts) has been written in the same transaction. The
tables are owned by a third role (the one that migrates) that neither process uses.

Grants are the authority; the triggers are the second lock, and the one that also holds
against the owner by mistake (a superuser can still disable them: the signed anchors are what
prove history outside the database). A refusal raises SQLSTATE ``insufficient_privilege``
with a message that says what was refused and why.
"""

from __future__ import annotations

import re

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_REFUSE = """CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wardgate audit: % on %.% refused: the audit log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are never changed; retention deletes a chain prefix as the pruner role, after writing its anchor';
END $$"""

_PRUNE_ONLY = """CREATE OR REPLACE FUNCTION audit_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad_shard text;
    bad_seq bigint;
BEGIN
    EXECUTE format('SELECT g.shard, g.seq FROM gone g LEFT JOIN %I.audit_anchors a ON a.shard = g.shard '
                   'WHERE a.seq IS NULL OR g.seq >= a.seq LIMIT 1', TG_TABLE_SCHEMA) INTO bad_shard, bad_seq;
    IF bad_shard IS NOT NULL THEN
        RAISE EXCEPTION 'wardgate audit: DELETE of chain % seq % refused: only events below the chain''s retention anchor may be deleted', bad_shard, bad_seq
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'retention writes the anchor (audit_anchors) first, then deletes below it';
    END IF;
    RETURN NULL;
END $$"""

_ANCHOR_FORWARD = """CREATE OR REPLACE FUNCTION audit_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wardgate audit: retention anchor of chain % may only move forward (seq % -> %)', OLD.shard, OLD.seq, NEW.seq
        USING ERRCODE = 'insufficient_privilege';
END $$"""

_HEAD_FORWARD = """CREATE OR REPLACE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wardgate audit: head of chain % may not move backwards (seq % -> %)', OLD.shard, OLD.seq, NEW.seq
        USING ERRCODE = 'insufficient_privilege';
END $$"""


def append_only_ddl() -> list[str]:
    """Schema v3: triggers that refuse rewriting history, whoever holds the grants.

    Statement-level where possible: an ordinary insert pays nothing, and the head trigger's
    ``WHEN`` is evaluated without calling PL/pgSQL unless a head would move backwards.
    """
    return [
        _REFUSE,
        _PRUNE_ONLY,
        _ANCHOR_FORWARD,
        _HEAD_FORWARD,
        "DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events",
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
        "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
        "DROP TRIGGER IF EXISTS audit_events_prune_only ON audit_events",
        "CREATE TRIGGER audit_events_prune_only AFTER DELETE ON audit_events "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION audit_prune_only()",
        "DROP TRIGGER IF EXISTS audit_anchors_forward ON audit_anchors",
        "CREATE TRIGGER audit_anchors_forward BEFORE UPDATE ON audit_anchors FOR EACH ROW "
        "WHEN (NEW.seq <= OLD.seq OR NEW.shard <> OLD.shard) EXECUTE FUNCTION audit_anchor_forward()",
        "DROP TRIGGER IF EXISTS audit_anchors_no_delete ON audit_anchors",
        "CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE OR TRUNCATE ON audit_anchors "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
        "DROP TRIGGER IF EXISTS audit_heads_forward ON audit_heads",
        "CREATE TRIGGER audit_heads_forward BEFORE UPDATE ON audit_heads FOR EACH ROW "
        "WHEN (NEW.seq < OLD.seq OR NEW.shard <> OLD.shard) EXECUTE FUNCTION audit_head_forward()",
        "DROP TRIGGER IF EXISTS audit_heads_no_delete ON audit_heads",
        "CREATE TRIGGER audit_heads_no_delete BEFORE DELETE OR TRUNCATE ON audit_heads "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
    ]


def _ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return f'"{name}"'


def grant_sql(schema: str, writer: str, pruner: str) -> list[str]:
    """The grants of the two roles (run by the tables' owner after the migration).

    writer (the gateway): read, append events and content captures, move its own head
                          (and renew its lease), fold the spend rollup (derived, unchained).
    pruner (retention):   the same, plus delete events below an anchor and write anchors.
    Neither may UPDATE events or DELETE heads, and neither owns anything (an owner could
    drop the triggers).
    """
    s, w, p = _ident(schema, "schema"), _ident(writer, "writer role"), _ident(pruner, "pruner role")
    if writer == pruner:
        raise ValueError("the writer and pruner roles must differ (the gateway must not be able to delete)")
    both = f"{w}, {p}"
    return [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {both}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {both}",
        f"GRANT USAGE ON SCHEMA {s} TO {both}",
        f"GRANT SELECT ON {s}.audit_meta TO {both}",
        f"GRANT SELECT, INSERT ON {s}.audit_events TO {both}",
        f"GRANT SELECT, INSERT, UPDATE ON {s}.audit_heads TO {both}",
        f"GRANT SELECT ON {s}.audit_anchors TO {w}",
        f"GRANT DELETE ON {s}.audit_events TO {p}",
        f"GRANT SELECT, INSERT, UPDATE ON {s}.audit_anchors TO {p}",
        # Content captures: outside the chain (referenced by hash), own retention.
        f"GRANT SELECT, INSERT ON {s}.audit_captures TO {both}",
        f"GRANT DELETE ON {s}.audit_captures TO {p}",
        # The spend rollup: derived from the events (outside the chain), folded by readers.
        f"GRANT SELECT, INSERT, UPDATE ON {s}.audit_spend_rollup, {s}.audit_spend_marks TO {both}",
        f"GRANT DELETE ON {s}.audit_spend_rollup TO {p}",
    ]
