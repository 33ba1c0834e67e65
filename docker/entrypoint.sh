#!/bin/sh
# Container entrypoint (docker/compose.yaml and docker/k8s/): prepares the writable state the
# gateway needs, then execs `wardgate serve "$@"`. The image carries no keys and no secrets.
#
# 1. Secrets arrive as files (compose secrets, Kubernetes Secret volumes), so they never show
#    in `docker inspect` or the pod spec: each variable below that is still unset is read from
#    its file when that file exists.
# 2. policies_dir must be writable (the admin API and `wardgate keys create` rewrite keys.yaml
#    next to a lock file), so the image's read-only policies are copied into STATE_DIR at every
#    start (an image upgrade brings its policies); keys.yaml is seeded from KEYS_SEED_FILE only
#    when STATE_DIR has none yet (keys created or revoked since are kept). Every copy is a
#    rename, so a replica already running (compose replicas share STATE_DIR) never reads half
#    a file.
# 3. PROMETHEUS_MULTIPROC_DIR is emptied: files left by a previous run's workers would keep
#    their series (a Kubernetes emptyDir survives a container restart).
set -eu

STATE_DIR="${STATE_DIR:-/var/lib/wardgate}"
POLICIES_SRC="${POLICIES_SRC:-/app/policies}"
KEYS_SEED_FILE="${KEYS_SEED_FILE:-/run/secrets/wardgate_keys.yaml}"
SECRETS_DIR="${SECRETS_DIR:-/run/secrets}"

from_file() {  # from_file VAR FILE: export VAR from FILE (trailing newline dropped) if VAR is unset
    eval "is_set=\${$1+x}"
    if [ -z "$is_set" ] && [ -f "$2" ]; then
        value=$(cat "$2")
        export "$1=$value"
    fi
}
from_file WARDGATE_APPROVALS_KEY "$SECRETS_DIR/wardgate_approvals_key"
from_file PGPASSWORD "$SECRETS_DIR/postgres_password"
from_file OPENAI_API_KEY "$SECRETS_DIR/openai_api_key"

mkdir -p "$STATE_DIR/policies" "$STATE_DIR/data"
for src in "$POLICIES_SRC"/*.yaml; do
    name=$(basename "$src")
    [ "$name" = keys.yaml ] && continue  # never from the image or the ConfigMap
    cp "$src" "$STATE_DIR/policies/.$name.new"
    mv -f "$STATE_DIR/policies/.$name.new" "$STATE_DIR/policies/$name"
done
if [ ! -f "$STATE_DIR/policies/keys.yaml" ]; then
    if [ ! -f "$KEYS_SEED_FILE" ]; then
        echo "wardgate: no keys: mount a keys.yaml (hashes only, with admin_keys) at $KEYS_SEED_FILE" >&2
        exit 64
    fi
    cp "$KEYS_SEED_FILE" "$STATE_DIR/policies/.keys.yaml.seed"
    # ln refuses an existing target: of two replicas seeding at once, one wins, both go on.
    ln "$STATE_DIR/policies/.keys.yaml.seed" "$STATE_DIR/policies/keys.yaml" 2>/dev/null || true
    rm -f "$STATE_DIR/policies/.keys.yaml.seed"
fi

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
fi

exec wardgate serve "$@"
