"""Virtual keys: who may call the gateway, and the admin keys of the admin API.

Module map:

    store.py         KeyStore (hash → principal, swapped whole on reload), parsing keys documents, new keys
    schema.py        the keys.yaml shape: every key an entry may hold (a typo is refused, not ignored)
    config.py        KeysSettings: the ``keys:`` section (backend file | redis | postgres)
    backend.py       KeyBackend: what the API and CLI write through; KeysUnavailable (503)
    keyfile.py       the one writer of keys.yaml (flock + atomic replace)
    reload.py        KeyReloader: file backend; every worker follows keys.yaml (stat every second)
    shared.py        SharedKeys: what both shared backends share (load, readiness, edits); read_doc
    redis_backend.py RedisKeys: Redis backend shared by replicas (pub/sub + version check)
    postgres_backend.py PostgresKeys: PostgreSQL backend shared by replicas (LISTEN/NOTIFY + version poll)
    bearer.py        bearer_token: the one parser of ``Authorization: Bearer …``
    stage.py         AuthenticateStage (``authenticate``, first stage) and authenticate_key
    request.py       the body of ``POST /admin/keys``, checked field by field
    api.py           admin API: POST/GET/DELETE /admin/keys
    cli.py           ``wardgate keys create|revoke|list`` (honours --config / WARDGATE_CONFIG)
    component.py     Keys: the component (settings, stage, backend follower, routes, CLI)
"""
