#!/bin/sh
# Install the Debian 12 packages Kurier needs (DESIGN.md, dependencies).
# Usage: deps.sh build|test|fuzz. As root: apt-get installs what is missing.
# Otherwise: prints the one apt-get line to run and fails.
set -eu
BUILD_PKGS="gcc pkg-config meson ninja-build openssl libuv1-dev libssl-dev libexpat1-dev
 libyaml-dev libsqlite3-dev libidn2-dev libicu-dev libunbound-dev libwolfssl-dev libjemalloc-dev"
# prosody, lua-unbound (Prosody's resolver that reads a hosts file) and ejabberd: the real
# peers of the interop tests (tests/interop); util-linux: unshare and mount for them;
# ldnsutils: signs the DNSSEC zone of test_s2s_dns.py.
TEST_PKGS="libcmocka-dev python3 python3-pytest python3-slixmpp python3-openssl python3-cryptography
 go-sendxmpp profanity tmux sslscan testssl.sh prosody lua-unbound ejabberd util-linux ldnsutils"
# Packages whose install would start a system service on 0.0.0.0:5222/5269 (clashing with the
# interop tests' own peers): installed with services kept from starting (policy-rc.d).
SERVICE_PKGS="prosody ejabberd"
FUZZ_PKGS="clang libclang-rt-14-dev"
pkgs=$BUILD_PKGS
[ "${1:-build}" = test ] && pkgs="$BUILD_PKGS $TEST_PKGS"
[ "${1:-build}" = fuzz ] && pkgs="$BUILD_PKGS $FUZZ_PKGS"
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
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # exit 101 = "action forbidden": invoke-rc.d starts no service during this install
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
rc=0
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
# Where a service got started anyway (an init that ignores policy-rc.d), stop and disable it.
for s in $SERVICE_PKGS; do
    case " $missing " in *" $s "*) ;; *) continue ;; esac
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now "$s" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$s" ]; then
        "/etc/init.d/$s" stop >/dev/null 2>&1 || true
        update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
done
exit $rc
