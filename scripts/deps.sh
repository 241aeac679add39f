#!/bin/sh
# Install the Debian 12 packages Kurier needs (DESIGN.md, dependencies).
# Usage: deps.sh build|test. As root: apt-get installs what is missing.
# Otherwise: prints the one apt-get line to run and fails.
set -eu
BUILD_PKGS="gcc pkg-config meson ninja-build openssl libuv1-dev libssl-dev libexpat1-dev
 libyaml-dev libsqlite3-dev libidn2-dev libicu-dev libunbound-dev"
TEST_PKGS="libcmocka-dev python3 python3-pytest python3-slixmpp python3-openssl python3-cryptography
 go-sendxmpp profanity tmux sslscan testssl.sh"
pkgs=$BUILD_PKGS
[ "${1:-build}" = test ] && pkgs="$BUILD_PKGS $TEST_PKGS"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Expat must carry the fix of CVE-2023-52425 (XML_SetReparseDeferralEnabled, Debian
# 2.5.0-1+deb12u2 and later); an older installed copy is upgraded like a missing package.
if [ -f /usr/include/expat.h ] && ! grep -q XML_SetReparseDeferralEnabled /usr/include/expat.h; then
    missing="$missing libexpat1 libexpat1-dev"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages. Run as root:" >&2
    echo "  apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
