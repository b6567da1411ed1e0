#!/bin/sh
# Refuse to initialise the stack with a secret that is empty or still the placeholder of .env.example.
# Usage: check-secrets.sh NAME... (the names of environment variables)
set -eu
status=0
for name in "$@"; do
    value=$(printenv "$name" || true)
    if [ -z "$value" ] || [ "$value" = "change-me" ]; then
        echo "error: $name is empty or still 'change-me', the placeholder of compose/.env.example; set it in compose/.env" >&2
        status=1
    fi
done
exit "$status"
