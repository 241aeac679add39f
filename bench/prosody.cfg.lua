-- SPDX-License-Identifier: AGPL-3.0-or-later
--
-- Prosody 0.12 for Kurier's side-by-side benchmark (scripts/bench.sh, docs/PERFORMANCE.md).
-- A template: bench.sh replaces @WORK@ (this server's own directory under the run's work
-- directory, owned by the 'prosody' user, which Prosody switches to when started as root),
-- @CERT@/@KEY@ (the shared self-signed ECDSA P-256 certificate for bench.localhost, copied
-- there) and @PORT@/@DPORT@ (loopback ports). Equal footing with kurierd.yml and ejabberd.yml:
-- c2s only on 127.0.0.1, TLS required, no s2s, no HTTP, no archive (mod_mam not loaded), no
-- rate limits (mod_limits not loaded), SCRAM iterations 4096 (Prosody 0.12 stores only
-- SCRAM-SHA-1 credentials, so clients get SCRAM-SHA-1, not -256), offline storage on,
-- internal file storage, the epoll backend. The admin socket (mod_admin_shell) exists only
-- so bench.sh can create the accounts in one `prosodyctl shell` session.

daemonize = false
pidfile = "@WORK@/prosody.pid"
data_path = "@WORK@/data"
admin_socket = "@WORK@/data/prosody.sock"
log = { warn = "@WORK@/prosody.log" }
network_backend = "epoll"
network_settings = { tcp_backlog = 1024 } -- the same listen backlog as kurierd and ejabberd

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = { @DPORT@ }
c2s_direct_tls_interfaces = { "127.0.0.1" }
s2s_ports = { }
s2s_interfaces = { }
http_ports = { }
https_ports = { }
http_interfaces = { }
https_interfaces = { }

c2s_require_encryption = true
s2s_require_encryption = true
allow_unencrypted_plain_auth = false
certificates = "@WORK@/certs"
ssl = { certificate = "@CERT@", key = "@KEY@" }

authentication = "internal_hashed"
default_iteration_count = 4096
storage = "internal"
allow_registration = false
c2s_stanza_size_limit = 262144

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "private"; "vcard";
	"blocklist"; "offline"; "version"; "time"; "admin_shell";
}
modules_disabled = { "s2s"; "http"; "limits"; "mam"; "smacks"; "carbons"; "pep"; "csi_simple" }

VirtualHost "bench.localhost"
	ssl = { certificate = "@CERT@", key = "@KEY@" }
