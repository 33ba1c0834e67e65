"""Virtual keys: who may call the gateway, and the admin keys of the admin API.

Module map:

    store.py     KeyStore (hash → principal, swapped whole on reload), parsing keys.yaml, new keys
    schema.py    the keys.yaml shape: every key an entry may hold (a typo is refused, not ignored)
    keyfile.py   the one writer of keys.yaml (flock + atomic replace), shared by the CLI and the API
    reload.py    KeyReloader: every worker follows keys.yaml (stat every second, swap the store)
    bearer.py    bearer_token: the one parser of ``Authorization: Bearer …``
    stage.py     AuthenticateStage (``authenticate``, first stage) and authenticate_key
    request.py   the body of ``POST /admin/keys``, checked field by field
    api.py       admin API: POST/GET/DELETE /admin/keys
    cli.py       ``wardgate keys create``
    component.py Keys: the component (stage, keys.yaml follower, routes, CLI)
"""
