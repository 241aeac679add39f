#!/bin/sh
# First-start set-up for `make run`: the data directory and, if the configured
# certificate is missing, a self-signed ECDSA P-256 certificate for the first
# configured domain (for development only: clients must be told to trust it).
# The SQLite store is created by kurierd itself when it first opens it.
# Usage: dev-setup.sh CONFIG BUILD_DIR
set -eu
config=$1
build=$2
# The values come from the config file, read with the same defaults kurierd uses.
value() { # key default
    v=$(sed -n "s/^$1:[[:space:]]*\([^#]*\).*/\1/p" "$config" | head -n1 | sed 's/[[:space:]]*$//; s/^"\(.*\)"$/\1/')
    [ -n "$v" ] && echo "$v" || echo "$2"
}
data_dir=$(value data_dir ./data)
domain=$(sed -n 's/^domains:[[:space:]]*\[\([^],]*\).*/\1/p' "$config" | tr -d ' "' | head -n1)
[ -n "$domain" ] || domain=localhost
cert=$(sed -n 's/^[[:space:]]*certificate:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$config" | head -n1)
key=$(sed -n 's/^[[:space:]]*key:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$config" | head -n1)
[ -n "$cert" ] || cert=cert.pem
[ -n "$key" ] || key=key.pem
case $cert in /*) ;; *) cert="$data_dir/$cert" ;; esac
case $key in /*) ;; *) key="$data_dir/$key" ;; esac
mkdir -p "$data_dir"
chmod 700 "$data_dir"
if [ ! -f "$cert" ] || [ ! -f "$key" ]; then
    echo "Creating a self-signed certificate for $domain in $cert (development only)"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
        -subj "/CN=$domain" -addext "subjectAltName=DNS:$domain" \
        -keyout "$key" -out "$cert" 2>/dev/null
fi
if [ ! -f "$data_dir/.hint-shown" ]; then
    echo "Add an account:  $build/kurierctl -c $config adduser you@$domain"
    echo "Clients must trust $cert (self-signed)."
    touch "$data_dir/.hint-shown"
fi
