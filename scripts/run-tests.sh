#!/bin/bash
# Runs Kurier's tests from the sanitizer build (build-test/) and ends with one
# summary line "N passed, N failed" counting individual test cases:
#   unit         every cmocka binary build-test/test_* (a sanitizer report aborts it: failure)
#   integration  pytest + slixmpp against a real kurierd (tests/integration)
#   interop      federation with real Prosody and ejabberd peers (tests/interop; root)
#   release      some integration tests against the release build (build/: jemalloc, no
#                sanitizers), the server `make run` and `make bench` run
#   all          all four
# Exit status is non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
passed=0
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_unit() {
    local bin out p f rc
    for bin in build-test/test_*; do
        [ -x "$bin" ] && [ -f "$bin" ] || continue
        out=$("$bin" 2>&1)
        rc=$?
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -n1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1 # crashed or a sanitizer stopped it
        fi
        if [ "$f" -ne 0 ]; then
            printf '%s\n' "$out" | grep -vE '^\[ +(RUN|OK) +\]' | tail -n 40
        fi
        printf 'unit %-18s %4d passed, %d failed\n' "$(basename "$bin")" "$p" "$f"
        passed=$((passed + p))
        failed=$((failed + f))
    done
}

run_pytest() { # paths...
    local log rc summary p f e
    log=$(mktemp)
    /usr/bin/python3 -m pytest "$@" -p no:cacheprovider -q -rfEs 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    summary=$(grep -E '(passed|failed|error)' "$log" | tail -n1)
    p=$(printf '%s' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(printf '%s' "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    e=$(printf '%s' "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
    p=${p:-0}
    f=$(( ${f:-0} + ${e:-0} ))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # pytest could not run, or collected nothing
    fi
    rm -f "$log"
    passed=$((passed + p))
    failed=$((failed + f))
}

# The release kurierd differs from build-test's in its allocator (jemalloc with kurierd's
# malloc_conf) and optimisation: real clients across idle TLS hand-overs, routing under load
# and offline delivery across kills.
run_release() {
    if [ ! -x build/kurierd ] || [ ! -x build/kurierctl ]; then
        echo "release: build/kurierd is missing (make build)"
        failed=$((failed + 1))
        return
    fi
    KURIERD=$PWD/build/kurierd KURIERCTL=$PWD/build/kurierctl run_pytest \
        tests/integration/test_tls_handover.py tests/integration/test_routing.py \
        tests/integration/test_offline.py
}

case $what in
unit) run_unit ;;
integration) run_pytest tests/integration ;;
interop) run_pytest tests/interop ;;
release) run_release ;;
all) run_unit; run_pytest tests/integration; run_pytest tests/interop; run_release ;;
*) echo "usage: $0 unit|integration|interop|release|all" >&2; exit 2 ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
