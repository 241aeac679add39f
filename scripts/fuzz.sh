#!/bin/bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Builds and runs Kurier's libFuzzer harnesses (tests/fuzz/<target>/fuzz_<target>.c).
#   scripts/fuzz.sh build [TARGET...]   build build-fuzz/fuzz_<target> with clang
#   scripts/fuzz.sh run [TARGET...]     build, then fuzz each target for FUZZ_SECONDS (60)
#   scripts/fuzz.sh merge [TARGET...]   build, then minimise each corpus/ in place: the seed-*
#                                       files stay, other inputs only if they add coverage
# Default targets: every directory of tests/fuzz with a harness.
# The build is separate from meson's (the gcc builds never see -fsanitize=fuzzer): the library
# sources the harnesses need are compiled with clang, ASan, UBSan and libFuzzer's coverage
# instrumentation into build-fuzz/, rebuilt when a source or header is newer than its object.
# A run fuzzes one process per target (one job, -jobs=1 equivalent) over its corpus/, adds new
# interesting inputs to corpus/, writes any crash, leak, timeout or out-of-memory input to
# tests/fuzz/<target>/crashes/, and keeps the log in build-fuzz/<target>.log. The summary lines
# give executions and crashes per target; the exit status is non-zero when anything crashed.
# Inputs in crashes/ are replayed by `make test` (test_fuzz_<target>): move one to open/ until
# its bug is fixed. Needs the Debian packages clang and libclang-rt-14-dev.
# Environment: FUZZ_SECONDS (per target), FUZZ_ARGS (extra libFuzzer flags), CC (clang).
set -eu
cd "$(dirname "$0")/.."

mode=${1:-run}
[ $# -gt 0 ] && shift
CC=${CC:-clang}
OUT=build-fuzz
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_ARGS=${FUZZ_ARGS:-}

case $mode in
build | run | merge) ;;
*)
    echo "usage: $0 build|run|merge [TARGET...]" >&2
    exit 2
    ;;
esac

if ! command -v "$CC" >/dev/null 2>&1 ||
    [ ! -f "$("$CC" -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
    echo "fuzz: clang with libFuzzer is missing. Run as root:" >&2
    echo "  apt-get install -y clang libclang-rt-14-dev" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=""
    for d in tests/fuzz/*/; do
        t=$(basename "$d")
        [ -f "$d/fuzz_$t.c" ] && targets="$targets $t"
    done
fi

PKGS="yaml-0.1 expat libidn2 icu-uc openssl libuv"
# shellcheck disable=SC2086
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
# shellcheck disable=SC2086
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter $SAN -Isrc"

# The libraries' sources (meson's kr_core, kr_xml, kr_xmpp, kr_sasl), the server's stanza code
# and address table, the protocols that run without I/O of their own: the client stream (with
# the limits and random-id code it calls, for c2s_session), the inbound s2s stream with its
# dialback keys (s2s_in) and the component stream (component), and the TLS 1.3 record layer
# (tls13_record).
LIB_SRCS=$(ls src/core/*.c src/xml/*.c src/xmpp/*.c src/sasl/*.c src/server/stanza.c \
    src/server/hosts.c src/server/c2s_stream.c src/server/limits.c src/server/random.c \
    src/server/s2s_in_stream.c src/server/dialback.c src/server/component_stream.c \
    src/net/tls13_record.c)
newest_header=$(ls -t src/*/*.h | head -n1)

mkdir -p "$OUT/obj"
objs=""
for src in $LIB_SRCS; do
    obj="$OUT/obj/$(echo "${src%.c}" | tr / _).o"
    objs="$objs $obj"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
        echo "CC $src"
        # shellcheck disable=SC2086
        "$CC" $CFLAGS -fsanitize=fuzzer-no-link $PKG_CFLAGS -c "$src" -o "$obj"
    fi
done
rm -f "$OUT/libkr_fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libkr_fuzz.a" $objs

for t in $targets; do
    h="tests/fuzz/$t/fuzz_$t.c"
    [ -f "$h" ] || { echo "fuzz: no harness $h" >&2; exit 2; }
    echo "LINK $OUT/fuzz_$t"
    # shellcheck disable=SC2086
    "$CC" $CFLAGS -fsanitize=fuzzer $PKG_CFLAGS "$h" "$OUT/libkr_fuzz.a" $PKG_LIBS -lpthread \
        -o "$OUT/fuzz_$t"
done
[ "$mode" = build ] && exit 0

if [ "$mode" = merge ]; then
    for t in $targets; do
        dir="tests/fuzz/$t"
        tmp="$OUT/merge-$t"
        rm -rf "$tmp"
        mkdir -p "$tmp"
        cp "$dir"/corpus/seed-* "$tmp"/ 2>/dev/null || true
        before=$(ls "$dir/corpus" | wc -l)
        "$OUT/fuzz_$t" -merge=1 "$tmp" "$dir/corpus" >"$OUT/$t.merge.log" 2>&1
        rm -rf "$dir/corpus"
        mv "$tmp" "$dir/corpus"
        echo "merge $t: $before -> $(ls "$dir/corpus" | wc -l) inputs"
    done
    exit 0
fi

max_len() {
    case $1 in
    jid) echo 4200 ;;     # past the 4 * 1023 bytes refused before any work
    scram) echo 4400 ;;   # past KR_SCRAM_MAX_MESSAGE plus the 3-byte header
    *) echo 8192 ;;
    esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=""
for t in $targets; do
    dir="tests/fuzz/$t"
    mkdir -p "$dir/corpus" "$dir/crashes"
    dict=""
    [ -f "$dir/$t.dict" ] && dict="-dict=$dir/$t.dict"
    log="$OUT/$t.log"
    echo "== fuzz $t for ${FUZZ_SECONDS}s (log: $log)"
    rc=0
    # shellcheck disable=SC2086
    "$OUT/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$dir/crashes/" \
        $dict $FUZZ_ARGS "$dir/corpus" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    new=$(grep -c 'Test unit written to' "$log" || true)
    tail -n 3 "$log" | grep -v '^stat::' || true
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -E '^(==[0-9]+==ERROR|SUMMARY:|.*runtime error:|fuzz_[a-z_0-9]+:)' "$log" | head -n 5
        summary="$summary
fuzz $t: ${execs:-?} executions, CRASHED (exit $rc), ${new} input(s) written to $dir/crashes/"
    else
        summary="$summary
fuzz $t: ${execs:-?} executions, 0 crashes"
    fi
done
echo "$summary"
exit $status
