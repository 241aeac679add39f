#!/bin/sh
# Regenerate the signed test zone for tests/unit/test_resolver.c (needs ldnsutils).
# Writes signed.test.zone.signed (valid 2025-2060), signed.test.ds (the trust anchor),
# bogus.test.zone.signed (the same zone with one address changed after signing, so its
# signature no longer verifies) and bogus-tlsa.test.zone.signed (the TLSA record changed). The keys are thrown away: only their output is kept.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ksk=$(cd "$tmp" && ldns-keygen -a ECDSAP256SHA256 -k signed.test)
zsk=$(cd "$tmp" && ldns-keygen -a ECDSAP256SHA256 signed.test)
ldns-signzone -i 20250101000000 -e 20600101000000 -f signed.test.zone.signed \
    signed.test.zone "$tmp/$ksk" "$tmp/$zsk"
cp "$tmp/$ksk.ds" signed.test.ds
sed 's/\(^xmpp\.signed\.test\.[[:space:]].*IN[[:space:]]*A[[:space:]]*\)127\.0\.0\.7/\1127.0.0.8/' \
    signed.test.zone.signed > bogus.test.zone.signed
cmp -s signed.test.zone.signed bogus.test.zone.signed && { echo "tampering failed" >&2; exit 1; }
# bogus-tlsa: only the TLSA record changed (its last digest byte), addresses still valid
sed 's/\(^_5269\._tcp\.xmpp\.signed\.test\.[[:space:]].*TLSA[[:space:]].*\)ef$/\1ee/' \
    signed.test.zone.signed > bogus-tlsa.test.zone.signed
cmp -s signed.test.zone.signed bogus-tlsa.test.zone.signed && { echo "tampering failed" >&2; exit 1; }
exit 0
