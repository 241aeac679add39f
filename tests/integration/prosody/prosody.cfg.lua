-- SPDX-License-Identifier: AGPL-3.0-or-later
-- Prosody (Debian 12, 0.12) configuration used to check the expectations of the kurierd
-- integration suite against another server.  Not used by the normal test run.
-- Run it with tests/integration/prosody/run-prosody.sh, which fills in @DIR@ and the ports
-- and creates the accounts; then run the suite with the --kurier-* options it prints.
-- TLS settings mirror Kurier's defaults (TLS 1.2+, ECDHE + AEAD only).
run_as_root = true
daemonize = false
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { debug = "@DIR@/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = { @DIRECT_PORT@ }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
authentication = "internal_plain"   -- lets SCRAM-SHA-1 and SCRAM-SHA-256 both work
ssl = {
    certificate = "@DIR@/cert.pem";
    key = "@DIR@/key.pem";
    protocol = "tlsv1_2+";
    ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
}
c2s_direct_tls_ssl = {
    certificate = "@DIR@/cert.pem";
    key = "@DIR@/key.pem";
    protocol = "tlsv1_2+";
    ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
}
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "presence", "message", "iq" }
modules_disabled = { "s2s" }
VirtualHost "localhost"
