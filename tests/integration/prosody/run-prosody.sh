#!/bin/bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Start Debian's Prosody on loopback with prosody.cfg.lua, for checking the expectations of
# the integration suite against another server.  Usage:
#   tests/integration/prosody/run-prosody.sh DIR [PORT DIRECT_PORT]
# Needs `apt-get install prosody` (do not start the system service).  Creates DIR with a
# self-signed certificate, the config and the test accounts, runs Prosody in the background
# and prints the pytest command.  Stop it with: kill "$(cat DIR/prosody.pid)"
set -eu
dir=$(realpath -m "$1"); port=${2:-15222}; direct=${3:-15223}
here=$(dirname "$(realpath "$0")")
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use (is a Prosody from an earlier run still up?)" >&2; exit 1
fi
mkdir -p "$dir/data"
if [ ! -f "$dir/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
fi
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@DIRECT_PORT@|$direct|g" \
    "$here/prosody.cfg.lua" > "$dir/prosody.cfg.lua"
for user in alice bob carol $(seq -f 'load%g' 0 49); do
    prosodyctl --config "$dir/prosody.cfg.lua" register "$user" localhost \
        "$user-Kurier-test-pw" >/dev/null
done
nohup prosody --config "$dir/prosody.cfg.lua" -F >"$dir/stdout.log" 2>&1 &
i=0
while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "prosody did not start"; exit 1; }; sleep 0.1
done
echo "/usr/bin/python3 -m pytest tests/integration --kurier-host 127.0.0.1" \
     "--kurier-port $port --kurier-direct-port $direct --kurier-domain localhost" \
     "--kurier-ca $dir/cert.pem"
