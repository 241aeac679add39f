#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
#
# Side-by-side benchmark of kurierd, ejabberd and Prosody (issue 4), run by `make bench`.
# It owns one work directory per run (servers' data, spools, logs, certificate) and one
# results directory (bench/results/<UTC time>/: every run's JSON line, versions, machine,
# server start commands), and writes docs/PERFORMANCE.md from them (scripts/bench_report.py).
# Steps: install prosody/ejabberd if missing (without letting the packages start their
# services), make one self-signed ECDSA P-256 certificate for bench.localhost, start the three
# servers (and an older kurierd if asked, below) on loopback from their own directories
# (templates in bench/), create the same accounts on each with its own tool, create the
# `presence` rosters once per server, then run every workload against every server
# interleaved (A B C A B C ...) for ROUNDS rounds.
# Invariants: only 127.0.0.1 is ever a target; every server process started here is stopped
# by the EXIT trap (by its PID); a server that cannot be started is reported, never faked.
#
# Environment (defaults in parentheses; QUICK=1 switches to small ones):
#   ROUNDS (3; QUICK 1)  SERVERS ("kurier ejabberd prosody"; names: those and kurier-base)
#   WORKLOADS (all, in this order:
#   "msg msg-half msg-light login idle presence")  IDLE_N (19900; QUICK 300)  PRESENCE_R (1000; QUICK 50)
#   MSG_PAIRS (100; QUICK 20)  MSG_WINDOW (4)  MSG_WARMUP (5; QUICK 1)  MSG_DURATION (10; QUICK 3)
#   LOGIN_N (1000; QUICK 200)  LOGIN_C (50; QUICK 20)  IDLE_HOLD (10; QUICK 3)  IDLE_RATE (1000)
#   SETUP_TIMEOUT (300: seconds for the one-time setup-roster, tried twice)
#   MSG_HALF_RATE (msg-half's offered load in msg/s, open loop; default: half of Kurier's
#   delivered msg/s in this run's first valid `msg` run, so `msg` must come first)
#   HALF_SERVERS ("kurier", and kurier-base when it runs: the servers msg-half runs against;
#   the rate is above ejabberd's and Prosody's peak)
#   MSG_HALF_WINDOW (64: in-flight bound per pair under --msg-rate; never reached when healthy)
#   BUILD (build)  BENCH_WORK (a new /tmp/kurier-bench.XXXXXX, removed at the end unless
#   KEEP_WORK=1)  REPORT (docs/PERFORMANCE.md)  SUMMARY (bench/results/latest-summary.json)
#   KURIER_PORT (15222)  KURIER_BASE_PORT (16222)  EJABBERD_PORT (35222)
#   PROSODY_PORT (25222); each server also uses PORT+1 for direct TLS, ejabberd PORT+77 for
#   its Erlang distribution (loopback only).
#   PIN ("": everything shares all CPUs): "SERVER_CPUS/BENCH_CPUS" in taskset's list syntax,
#   e.g. "1/0": every server runs on SERVER_CPUS with as many threads as that list has CPUs
#   (kurierd's workers: 0 follows its affinity, ejabberd gets +S N:N +SDcpu N:N, Prosody is
#   single-threaded anyway) and kurier-bench on BENCH_CPUS with -t N, so the load generator
#   never takes CPU from the server it measures.
#
# An older Kurier beside the current one (to check a change against main in the same run):
# the server name kurier-base is a second kurierd run exactly like kurier (the same
# bench/kurierd.yml, the same accounts created with that build's own kurierctl, the same PIN,
# its own directory and KURIER_BASE_PORT) in the same interleaved rounds; the two trade
# places in even rounds, so that neither always runs right after the other.
# Its binaries come from one of
#   BASE_KURIERD, BASE_KURIERCTL: paths of an existing build (BASE_KURIERCTL defaults to the
#     kurierctl next to BASE_KURIERD);
#   BASE_REF: a revision of this repository, e.g. BASE_REF=6030ec4 or BASE_REF=main. bench.sh
#     checks it out with `git worktree add --detach` under the work directory, builds its
#     release kurierd and kurierctl (meson setup --buildtype=release -Dtests=disabled, ninja,
#     -j BASE_JOBS if set) into WORK/kurier-base-build, and removes the worktree again; the
#     build log is kept with the results. With BENCH_WORK, a build of the same commit left
#     there by an earlier run is reused.
# versions.tsv records its `kurierd -V`, and the commit (git rev-parse) or the path. With
# BASE_REF or BASE_KURIERD set, SERVERS defaults to "kurier kurier-base ejabberd prosody" and
# HALF_SERVERS to "kurier kurier-base" (msg-half offers both the same rate). The report adds
# "Kurier against an older Kurier": both builds' medians, their ratios and the verdicts msg/s
# and CPU per message within 5 %, logins/s and KiB per idle connection no worse. Only the two
# builds, quickly:
#   QUICK=1 SERVERS="kurier kurier-base" BASE_REF=main WORKLOADS="msg login idle" \
#     REPORT=/tmp/perf.md SUMMARY=/tmp/perf.json scripts/bench.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    d_rounds=1 d_idle=300 d_r=50 d_pairs=20 d_warm=1 d_dur=3 d_login=200 d_loginc=20 d_hold=3
else
    d_rounds=3 d_idle=19900 d_r=1000 d_pairs=100 d_warm=5 d_dur=10 d_login=1000 d_loginc=50 d_hold=10
fi
ROUNDS=${ROUNDS:-$d_rounds}
BASE_REF=${BASE_REF:-}
BASE_KURIERD=${BASE_KURIERD:-}
BASE_KURIERCTL=${BASE_KURIERCTL:-}
BASE_JOBS=${BASE_JOBS:-}
if [ -n "$BASE_REF$BASE_KURIERD" ]; then
    SERVERS=${SERVERS:-kurier kurier-base ejabberd prosody}
else
    SERVERS=${SERVERS:-kurier ejabberd prosody}
fi
WORKLOADS=${WORKLOADS:-msg msg-half msg-light login idle presence}
MSG_HALF_RATE=${MSG_HALF_RATE:-}
case " $SERVERS " in
    *" kurier-base "*) HALF_SERVERS=${HALF_SERVERS:-kurier kurier-base} ;;
    *) HALF_SERVERS=${HALF_SERVERS:-kurier} ;;
esac
MSG_HALF_WINDOW=${MSG_HALF_WINDOW:-64}
IDLE_N=${IDLE_N:-$d_idle}
IDLE_HOLD=${IDLE_HOLD:-$d_hold}
IDLE_RATE=${IDLE_RATE:-1000}
PRESENCE_R=${PRESENCE_R:-$d_r}
MSG_PAIRS=${MSG_PAIRS:-$d_pairs}
MSG_WINDOW=${MSG_WINDOW:-4}
MSG_WARMUP=${MSG_WARMUP:-$d_warm}
MSG_DURATION=${MSG_DURATION:-$d_dur}
LOGIN_N=${LOGIN_N:-$d_login}
LOGIN_C=${LOGIN_C:-$d_loginc}
SETUP_TIMEOUT=${SETUP_TIMEOUT:-300}
REPORT=${REPORT:-$REPO/docs/PERFORMANCE.md}
SUMMARY=${SUMMARY:-$REPO/bench/results/latest-summary.json}
KURIER_PORT=${KURIER_PORT:-15222}
KURIER_BASE_PORT=${KURIER_BASE_PORT:-16222}
EJABBERD_PORT=${EJABBERD_PORT:-35222}
PROSODY_PORT=${PROSODY_PORT:-25222}
EJABBERD_DIST_PORT=$((EJABBERD_PORT + 77))
DOMAIN=bench.localhost
HOST=127.0.0.1
PY=/usr/bin/python3
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)

PIN=${PIN:-}
SRV_PIN=() GEN_PIN=() GEN_THREADS=() ERL_SCHED=""
if [ -n "$PIN" ]; then
    [[ $PIN =~ ^([0-9][0-9,-]*)/([0-9][0-9,-]*)$ ]] \
        || { echo "bench.sh: PIN must be SERVER_CPUS/BENCH_CPUS, e.g. 1/0, not \"$PIN\"" >&2; exit 2; }
    srv_n=$(taskset -c "${BASH_REMATCH[1]}" nproc 2>/dev/null) \
        || { echo "bench.sh: PIN: no usable CPU in \"${BASH_REMATCH[1]}\"" >&2; exit 2; }
    gen_n=$(taskset -c "${BASH_REMATCH[2]}" nproc 2>/dev/null) \
        || { echo "bench.sh: PIN: no usable CPU in \"${BASH_REMATCH[2]}\"" >&2; exit 2; }
    SRV_PIN=(taskset -c "${BASH_REMATCH[1]}")
    GEN_PIN=(taskset -c "${BASH_REMATCH[2]}")
    GEN_THREADS=(-t "$gen_n")
    ERL_SCHED=" +S $srv_n:$srv_n +SDcpu $srv_n:$srv_n"
fi

# Accounts: bench0 .. bench(BASE_N-1) for msg, msg-light, login and idle; the presence user
# and its contacts are bench(PFIRST) .. bench(PFIRST+PRESENCE_R).
BASE_N=$((2 * MSG_PAIRS > 200 ? 2 * MSG_PAIRS : 200))
PFIRST=$((BASE_N > 1000 ? BASE_N : 1000))
LIGHT_PAIRS=10

# idle holds IDLE_N connections in every server and in kurier-bench at once: raise the soft
# open-file limit to the hard one (here 20,000, so 19,900 is the most idle can hold).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$IDLE_N" -gt $(($(ulimit -n) - 100)) ]; then
    case " $WORKLOADS " in *" idle "*)
        echo "bench: IDLE_N=$IDLE_N needs an open-file limit above $((IDLE_N + 100)) (have $(ulimit -n))" >&2
        exit 1 ;;
    esac
fi

BENCH=$BUILD/kurier-bench
KURIERD=$BUILD/kurierd
KURIERCTL=$BUILD/kurierctl

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

ALL_SERVERS="kurier kurier-base ejabberd prosody"
for s in $SERVERS; do
    case " $ALL_SERVERS " in
        *" $s "*) ;;
        *) die "unknown server '$s' in SERVERS (${ALL_SERVERS// /, })" ;;
    esac
done

# kurier-base's binaries: given (BASE_KURIERD, BASE_KURIERCTL) or built from BASE_REF below.
BASE_SHA="" KB_KURIERD="" KB_KURIERCTL=""
abs_path() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
case " $SERVERS " in
    *" kurier-base "*)
        if [ -n "$BASE_REF" ] && [ -n "$BASE_KURIERD$BASE_KURIERCTL" ]; then
            die "kurier-base: set either BASE_REF or BASE_KURIERD (and BASE_KURIERCTL), not both"
        elif [ -n "$BASE_REF" ]; then
            BASE_SHA=$(git -C "$REPO" rev-parse --verify --quiet "$BASE_REF^{commit}") \
                || die "kurier-base: BASE_REF=$BASE_REF is not a revision of $REPO"
        elif [ -n "$BASE_KURIERD" ]; then
            KB_KURIERD=$(abs_path "$BASE_KURIERD")
            KB_KURIERCTL=$(abs_path "${BASE_KURIERCTL:-$(dirname "$BASE_KURIERD")/kurierctl}")
            for b in "$KB_KURIERD" "$KB_KURIERCTL"; do
                [ -x "$b" ] || die "kurier-base: $b is not an executable (BASE_KURIERD, BASE_KURIERCTL)"
            done
        else
            die "kurier-base in SERVERS needs its binaries:" \
                "BASE_REF=<git revision> or BASE_KURIERD=<path> [BASE_KURIERCTL=<path>]"
        fi ;;
    *)
        [ -z "$BASE_REF$BASE_KURIERD$BASE_KURIERCTL" ] \
            || log "BASE_REF/BASE_KURIERD/BASE_KURIERCTL ignored: kurier-base is not in SERVERS" ;;
esac

for b in "$BENCH" "$KURIERD" "$KURIERCTL"; do
    [ -x "$b" ] || die "$b missing: build the release tree first (make build, or make bench)"
done
[ "$(id -u)" = 0 ] || die "run as root: ejabberd and Prosody are run as their packages' users"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$REPO/bench/results/$STAMP
mkdir -p "$RESULTS"
RAW=$RESULTS/runs.jsonl
: > "$RAW"
if [ -n "${BENCH_WORK:-}" ]; then WORK=$BENCH_WORK; mkdir -p "$WORK"; else
    WORK=$(mktemp -d /tmp/kurier-bench.XXXXXX); fi
chmod 755 "$WORK"
log "work directory $WORK, results $RESULTS"

# ------------------------------------------------------------------ processes and cleanup
declare -A PID=()        # server -> PID measured with --server-pid
declare -A LAUNCHER=()   # server -> PID of the process we started (ejabberdctl for ejabberd)
declare -A DOWN=()       # server -> why it is not benchmarked
AVAILABLE=()

stop_pid() { # pid seconds
    local p=$1 t=$2 i
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < t * 10; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    log "PID $p still running ${t}s after SIGTERM: SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
}

descendant() { # pid name [argument] -> a descendant of pid with that command name (and,
    # if given, that argument on its command line); ejabberdctl also runs short-lived beams
    local p
    for p in $(ps -e -o pid=,ppid=,comm= | awk -v root="$1" -v name="$2" '
        { parent[$1] = $2; comm[$1] = $3 }
        END { for (p in parent) if (comm[p] == name) {
                  for (q = parent[p]; q != "" && q > 1; q = parent[q])
                      if (q == root) { print p; break } } }'); do
        if [ -z "${3:-}" ] || tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qx -- "$3"; then
            echo "$p"
            return 0
        fi
    done
}

BASE_SRC=""   # kurier-base's git worktree while it exists
remove_base_worktree() {
    [ -n "$BASE_SRC" ] || return 0
    git -C "$REPO" worktree remove --force "$BASE_SRC" > /dev/null 2>&1 \
        || log "could not remove the git worktree $BASE_SRC (git worktree list shows it)"
    BASE_SRC=""
}

cleanup() {
    local s b
    trap - EXIT INT TERM
    # a beam.smp started before its PID was recorded
    if [ -n "${LAUNCHER[ejabberd]:-}" ] && [ -z "${PID[ejabberd]:-}" ]; then
        b=$(descendant "${LAUNCHER[ejabberd]}" beam.smp "-sname")
        [ -n "$b" ] && PID[ejabberd]=$b
    fi
    for s in "${!PID[@]}"; do
        log "stopping $s (PID ${PID[$s]})"
        stop_pid "${PID[$s]}" 20
    done
    for s in "${!LAUNCHER[@]}"; do stop_pid "${LAUNCHER[$s]}" 5; done
    wait 2>/dev/null || true
    remove_base_worktree
    if [ -z "${BENCH_WORK:-}" ] && [ "${KEEP_WORK:-0}" != 1 ]; then
        # keep the servers' logs with the results, drop data and spools
        for s in $ALL_SERVERS; do
            [ -d "$WORK/$s" ] || continue
            mkdir -p "$RESULTS/logs/$s"
            find "$WORK/$s" -maxdepth 2 -name '*.log' -exec cp {} "$RESULTS/logs/$s/" \; 2>/dev/null || true
        done
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Htln "sport = :$1" | grep -q .; }

wait_listening() { # server port pid seconds
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        kill -0 "$3" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/$HOST/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

mark_down() { # server reason
    DOWN[$1]=$2
    printf '%s\t%s\n' "$1" "$2" >> "$RESULTS/unavailable.tsv"
    log "$1 will not be benchmarked: $2"
}

# ------------------------------------------------------------------ packages
ensure_package() { # package
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" && return 0
    log "installing $1 (its service is not started)"
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" \
        > "$RESULTS/apt-$1.log" 2>&1 || rc=$?
    if [ $rc -ne 0 ]; then
        apt-get update -qq > /dev/null 2>&1 || true
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" \
            >> "$RESULTS/apt-$1.log" 2>&1 || rc=$?
    fi
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}

# ------------------------------------------------------------------ certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
CA=$WORK/cert.pem
chmod 644 "$CA"

fill() { # template out key=value...
    local tpl=$1 out=$2 expr=() kv
    shift 2
    for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${expr[@]}" "$tpl" > "$out"
}

record_start() { printf '%s: %s\n' "$1" "$2" >> "$RESULTS/server-commands.txt"; }

create_range() { # first last -> numbers, one a line
    seq "$1" "$2"
}
account_numbers() { create_range 0 $((BASE_N - 1)); create_range "$PFIRST" $((PFIRST + PRESENCE_R)); }

# ------------------------------------------------------------------ kurierd
# kurier and kurier-base: the same config template, each in its own directory.
start_kurierd() { # server port kurierd kurierctl
    local s=$1 port=$2 bin=$3 ctl=$4 d=$WORK/$1
    mkdir -p "$d/data"
    port_free "$port" && port_free $((port + 1)) \
        || { mark_down "$s" "port $port or $((port + 1)) in use"; return 1; }
    fill "$REPO/bench/kurierd.yml" "$d/kurierd.yml" WORK="$d" CERT="$WORK/cert.pem" \
        KEY="$WORK/key.pem" PORT="$port" DPORT=$((port + 1))
    (cd "$d" && exec "${SRV_PIN[@]}" "$bin" -c "$d/kurierd.yml") < /dev/null > "$d/kurierd.log" 2>&1 &
    PID[$s]=$!
    record_start "$s" "cd $d && ${SRV_PIN[*]}${SRV_PIN:+ }$bin -c $d/kurierd.yml   (config: bench/kurierd.yml)"
    wait_listening "$s" "$port" "${PID[$s]}" 30 \
        || { mark_down "$s" "kurierd did not start: $(tail -3 "$d/kurierd.log" | tr '\n' ' ')"; return 1; }
    log "$s: kurierd up (PID ${PID[$s]}), creating $((BASE_N + PRESENCE_R + 1)) accounts"
    account_numbers | xargs -P 4 -I{} sh -c \
        'echo "pw$1" | "$0" -c "$2" adduser "bench$1@$3" > /dev/null' \
        "$ctl" {} "$d/kurierd.yml" "$DOMAIN" \
        || { mark_down "$s" "kurierctl adduser failed"; return 1; }
    record_start "$s-accounts" "echo pwI | $ctl -c $d/kurierd.yml adduser benchI@$DOMAIN (for each I)"
}

start_kurier() { start_kurierd kurier "$KURIER_PORT" "$KURIERD" "$KURIERCTL"; }
start_kurier_base() { start_kurierd kurier-base "$KURIER_BASE_PORT" "$KB_KURIERD" "$KB_KURIERCTL"; }

# kurier-base from BASE_REF: that revision's release kurierd and kurierctl, built in a
# temporary worktree (removed as soon as the build is done) into WORK/kurier-base-build.
build_base() {
    local bdir=$WORK/kurier-base-build blog=$RESULTS/kurier-base-build.log
    KB_KURIERD=$bdir/kurierd KB_KURIERCTL=$bdir/kurierctl
    if [ "$(cat "$bdir/bench-commit" 2>/dev/null)" = "$BASE_SHA" ] \
        && [ -x "$KB_KURIERD" ] && [ -x "$KB_KURIERCTL" ]; then
        log "kurier-base: reusing the build of $BASE_SHA in $bdir"
        return 0
    fi
    rm -rf "$bdir"
    BASE_SRC=$(mktemp -d "$WORK/kurier-base-src.XXXXXX")
    log "kurier-base: building $BASE_REF ($BASE_SHA) in $bdir (log: $blog)"
    {
        git -C "$REPO" worktree add --detach "$BASE_SRC" "$BASE_SHA" \
            && meson setup "$bdir" "$BASE_SRC" --buildtype=release -Dtests=disabled \
            && ninja -C "$bdir" ${BASE_JOBS:+-j "$BASE_JOBS"} kurierd kurierctl
    } > "$blog" 2>&1 || die "kurier-base: building $BASE_REF failed: $(tail -3 "$blog" | tr '\n' ' ')"
    echo "$BASE_SHA" > "$bdir/bench-commit"
    remove_base_worktree
}

# ------------------------------------------------------------------ Prosody
start_prosody() {
    local d=$WORK/prosody
    ensure_package prosody || { mark_down prosody "apt-get install prosody failed (see apt-prosody.log)"; return 1; }
    port_free "$PROSODY_PORT" && port_free $((PROSODY_PORT + 1)) \
        || { mark_down prosody "port $PROSODY_PORT or $((PROSODY_PORT + 1)) in use"; return 1; }
    mkdir -p "$d/data" "$d/certs"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    fill "$REPO/bench/prosody.cfg.lua" "$d/prosody.cfg.lua" WORK="$d" CERT="$d/cert.pem" \
        KEY="$d/key.pem" PORT="$PROSODY_PORT" DPORT=$((PROSODY_PORT + 1))
    chown -R prosody:prosody "$d"
    chmod 600 "$d/key.pem"
    # Prosody refuses root; setpriv execs it as the package's user, so $! is Prosody itself.
    (cd "$d" && exec "${SRV_PIN[@]}" setpriv --reuid=prosody --regid=prosody --init-groups \
        env HOME="$d" prosody --config "$d/prosody.cfg.lua" -F) < /dev/null > "$d/console.log" 2>&1 &
    PID[prosody]=$!
    record_start prosody "cd $d && ${SRV_PIN[*]}${SRV_PIN:+ }setpriv --reuid=prosody --regid=prosody --init-groups env HOME=$d prosody --config $d/prosody.cfg.lua -F   (config: bench/prosody.cfg.lua)"
    wait_listening prosody "$PROSODY_PORT" "${PID[prosody]}" 30 \
        || { mark_down prosody "prosody did not start: $(tail -3 "$d/console.log" "$d/prosody.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
    log "prosody up (PID ${PID[prosody]}), creating accounts through prosodyctl shell"
    local script=$d/accounts.lua
    {
        echo "for i = 0, $((BASE_N - 1)) do user:create(\"bench\"..i..\"@$DOMAIN\", \"pw\"..i) end"
        echo "for i = $PFIRST, $((PFIRST + PRESENCE_R)) do user:create(\"bench\"..i..\"@$DOMAIN\", \"pw\"..i) end"
    } > "$script"
    (cd "$d" && prosodyctl --config "$d/prosody.cfg.lua" shell < "$script") > "$d/accounts.out" 2>&1 \
        || { mark_down prosody "prosodyctl shell failed: $(tail -3 "$d/accounts.out" | tr '\n' ' ')"; return 1; }
    local n
    n=$(find "$d/data/bench%2elocalhost/accounts" -name '*.dat' 2>/dev/null | wc -l)
    [ "$n" -ge $((BASE_N + PRESENCE_R + 1)) ] \
        || { mark_down prosody "only $n accounts created by prosodyctl shell"; return 1; }
    record_start prosody-accounts "prosodyctl --config $d/prosody.cfg.lua shell < accounts.lua   with: $(head -1 "$script")"
}

# ------------------------------------------------------------------ ejabberd
ejctl() { # args... (as the ejabberd user, with this run's config, spool and logs)
    local d=$WORK/ejabberd
    (cd "$d" && "${SRV_PIN[@]}" setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$d" \
        ejabberdctl --config-dir "$d" --config "$d/ejabberd.yml" --ctl-config "$d/ejabberdctl.cfg" \
        --spool "$d/spool" --logs "$d/logs" "$@")
}

start_ejabberd() {
    local d=$WORK/ejabberd i
    ensure_package ejabberd || { mark_down ejabberd "apt-get install ejabberd failed (see apt-ejabberd.log)"; return 1; }
    port_free "$EJABBERD_PORT" && port_free $((EJABBERD_PORT + 1)) && port_free "$EJABBERD_DIST_PORT" \
        || { mark_down ejabberd "port $EJABBERD_PORT, $((EJABBERD_PORT + 1)) or $EJABBERD_DIST_PORT in use"; return 1; }
    mkdir -p "$d/spool" "$d/logs"
    cat "$WORK/cert.pem" "$WORK/key.pem" > "$d/server.pem"
    fill "$REPO/bench/ejabberd.yml" "$d/ejabberd.yml" WORK="$d" CERTFILE="$d/server.pem" \
        PORT="$EJABBERD_PORT" DPORT=$((EJABBERD_PORT + 1))
    # The node's own name, cookie and distribution port (no epmd), bound to loopback.
    cat > "$d/ejabberdctl.cfg" <<EOF
ERLANG_NODE=kbench$$@localhost
ERL_DIST_PORT=$EJABBERD_DIST_PORT
INET_DIST_INTERFACE=127.0.0.1
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie kb$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')$ERL_SCHED"
EJABBERD_BYPASS_WARNINGS=true
EOF
    printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' > "$d/inetrc"
    chown -R ejabberd:ejabberd "$d"
    chmod 600 "$d/server.pem" "$d/ejabberdctl.cfg"
    ejctl foreground < /dev/null > "$d/console.log" 2>&1 &
    LAUNCHER[ejabberd]=$!
    record_start ejabberd "cd $d && ${SRV_PIN[*]}${SRV_PIN:+ }setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=$d ejabberdctl --config-dir $d --config $d/ejabberd.yml --ctl-config $d/ejabberdctl.cfg --spool $d/spool --logs $d/logs foreground   (config: bench/ejabberd.yml; measured PID: its beam.smp)"
    # ejabberdctl runs erl as a child; erl execs into beam.smp, the process to measure.
    local beam=""
    for ((i = 0; i < 100; i++)); do
        beam=$(descendant "${LAUNCHER[ejabberd]}" beam.smp "kbench$$@localhost")
        [ -n "$beam" ] && break
        kill -0 "${LAUNCHER[ejabberd]}" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$beam" ] || { mark_down ejabberd "no beam.smp started: $(tail -5 "$d/console.log" | tr '\n' ' ')"; return 1; }
    PID[ejabberd]=$beam
    wait_listening ejabberd "$EJABBERD_PORT" "$beam" 60 \
        || { mark_down ejabberd "ejabberd did not start: $(grep -h -m3 -E 'error|critical' "$d/console.log" "$d/logs/"*.log 2>/dev/null | tr '\n' ' ')"; return 1; }
    ejctl started > /dev/null 2>&1 || true
    log "ejabberd up (beam.smp PID $beam), importing accounts with ejabberdctl import_piefxis"
    # XEP-0227 (PIEFXIS) file: ejabberd hashes each plain password into SCRAM on import.
    {
        echo "<?xml version='1.0' encoding='UTF-8'?>"
        echo "<server-data xmlns='urn:xmpp:pie:0'><host jid='$DOMAIN'>"
        account_numbers | sed "s|.*|<user name='bench&' password='pw&'/>|"
        echo "</host></server-data>"
    } > "$d/accounts.xml"
    chown ejabberd:ejabberd "$d/accounts.xml"
    ejctl import_piefxis "$d/accounts.xml" > "$d/accounts.out" 2>&1 \
        || { mark_down ejabberd "import_piefxis failed: $(tail -3 "$d/accounts.out" | tr '\n' ' ')"; return 1; }
    local n
    n=$(ejctl registered_users "$DOMAIN" 2>/dev/null | grep -c '^bench' || true)
    [ "$n" -ge $((BASE_N + PRESENCE_R + 1)) ] \
        || { mark_down ejabberd "only $n accounts after import_piefxis"; return 1; }
    record_start ejabberd-accounts "ejabberdctl (same options) import_piefxis $d/accounts.xml   (XEP-0227: <user name='benchI' password='pwI'/> for each I)"
}

# ------------------------------------------------------------------ versions, machine
[ -z "$BASE_SHA" ] || build_base
{
    echo "kurierd	$("$KURIERD" --version 2>&1 | head -1)"
    echo "kurier-git	$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
    if [ -n "$KB_KURIERD" ]; then
        echo "kurier-base	$("$KB_KURIERD" -V 2>&1 | head -1)"
        if [ -n "$BASE_SHA" ]; then
            echo "kurier-base-git	$BASE_SHA (BASE_REF=$BASE_REF, built by bench.sh)"
        else
            echo "kurier-base-binary	$KB_KURIERD (BASE_KURIERD), $KB_KURIERCTL"
        fi
    fi
} > "$RESULTS/versions.tsv"
"$PY" "$REPO/scripts/bench_report.py" machine > "$RESULTS/machine.json"

port_of() {
    case $1 in
        kurier) echo "$KURIER_PORT" ;;
        kurier-base) echo "$KURIER_BASE_PORT" ;;
        ejabberd) echo "$EJABBERD_PORT" ;;
        prosody) echo "$PROSODY_PORT" ;;
    esac
}

for s in $SERVERS; do   # names checked above
    if "start_${s//-/_}"; then AVAILABLE+=("$s"); fi
done
# (the packages' versions only for the servers asked for)
if [[ " $SERVERS " == *" prosody "* ]] && dpkg-query -W prosody > /dev/null 2>&1; then
    echo "prosody	$(prosodyctl about 2>/dev/null | head -1) (Debian $(dpkg-query -W -f='${Version}' prosody), $(prosodyctl about 2>/dev/null | sed -n 's/^Lua version: *//p' | head -1 | tr -s ' \t' ' ' | sed 's/^ //'))" >> "$RESULTS/versions.tsv"
fi
if [[ " $SERVERS " == *" ejabberd "* ]] && dpkg-query -W ejabberd > /dev/null 2>&1; then
    ev=$( [ -n "${PID[ejabberd]:-}" ] && ejctl status 2>/dev/null | sed -n 's/ is running.*//p' | head -1 || true)
    echo "ejabberd	${ev:-ejabberd $(dpkg-query -W -f='${Version}' ejabberd)} (Erlang/OTP $(erl -noshell -eval 'io:format("~s",[erlang:system_info(otp_release)]), halt().' 2>/dev/null))" >> "$RESULTS/versions.tsv"
fi
[ ${#AVAILABLE[@]} -gt 0 ] || die "no server could be started"
log "servers: ${AVAILABLE[*]}"

# ------------------------------------------------------------------ runs
json_str() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

run_bench() { # server workload round args...
    local s=$1 w=$2 r=$3 rc=0 out err load0 load1
    shift 3
    local cmd=("${GEN_PIN[@]}" "$BENCH" "$@" "${GEN_THREADS[@]}" --host "$HOST" --port "$(port_of "$s")" --user "bench%d@$DOMAIN"
               --ca "$CA" --server-pid "${PID[$s]}")
    out=$RESULTS/.out err=$RESULTS/stderr-$s-$w-$r.txt
    load0=$(cut -d' ' -f1 /proc/loadavg)
    if ! kill -0 "${PID[$s]}" 2>/dev/null; then
        log "$s is no longer running; skipping $w"
        printf '{"server":"%s","workload":"%s","round":%d,"exit":-1,"command":%s,"note":"server not running","result":null}\n' \
            "$s" "$w" "$r" "$(json_str "${cmd[*]}")" >> "$RAW"
        return 0
    fi
    "${cmd[@]}" > "$out" 2> "$err" || rc=$?
    load1=$(cut -d' ' -f1 /proc/loadavg)
    local res
    res=$(head -1 "$out")
    [ -n "$res" ] || res=null
    printf '{"server":"%s","workload":"%s","round":%d,"exit":%d,"loadavg_before":%s,"loadavg_after":%s,"command":%s,"result":%s}\n' \
        "$s" "$w" "$r" "$rc" "$load0" "$load1" "$(json_str "${cmd[*]}")" "$res" >> "$RAW"
    log "round $r $w $s: $(grep -E -- '-- (OK|FAILED)' "$err" | tail -1)"
    rm -f "$out"
}

workload_args() { # workload
    case $1 in
        msg) echo "msg $MSG_PAIRS -w $MSG_WINDOW --warmup $MSG_WARMUP --duration $MSG_DURATION" ;;
        msg-half) echo "msg $MSG_PAIRS -w $MSG_HALF_WINDOW --msg-rate ${MSG_HALF_RATE:-0} --warmup $MSG_WARMUP --duration $MSG_DURATION" ;;
        msg-light) echo "msg $LIGHT_PAIRS -w 1 --warmup $MSG_WARMUP --duration $MSG_DURATION" ;;
        login) echo "login $LOGIN_N -c $LOGIN_C --accounts $BASE_N --presence" ;;
        idle) echo "idle $IDLE_N --accounts $BASE_N --rate $IDLE_RATE --hold $IDLE_HOLD --source 127.0.0.2,127.0.0.3" ;;
        presence) echo "presence $PRESENCE_R --first $PFIRST --timeout 30" ;;
        *) die "unknown workload '$1'" ;;
    esac
}

for w in $WORKLOADS; do workload_args "$w" > /dev/null; done
case " $WORKLOADS " in *" msg-half "*)
    if [ -z "$MSG_HALF_RATE" ]; then
        case " $WORKLOADS " in *" msg "*"msg-half "*) ;;
            *) die "msg-half needs MSG_HALF_RATE or the msg workload before it in WORKLOADS" ;;
        esac
    fi ;;
esac

# msg-half's rate, once: half of the first valid Kurier msg run's delivered msg/s.
half_rate_from_runs() {
    "$PY" - "$RAW" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    res = r.get("result") or {}
    if r["server"] == "kurier" and r["workload"] == "msg" and res.get("valid"):
        print(int(res["results"]["msgs_per_s"] / 2))
        break
PYEOF
}

# Whether server $1 runs workload $2 (msg-half only against HALF_SERVERS).
runs_workload() {
    [ "$2" != msg-half ] && return 0
    case " $HALF_SERVERS " in *" $1 "*) return 0 ;; esac
    return 1
}

case " $WORKLOADS " in *" presence "*)
    for s in "${AVAILABLE[@]}"; do
        log "setup-roster $PRESENCE_R on $s"
        # shellcheck disable=SC2046
        # Subscriptions are slow on some servers (each one is a few durable roster writes);
        # a second pass finishes what the first left (it is idempotent).
        for attempt in 1 2; do
            run_bench "$s" setup-roster 0 setup-roster "$PRESENCE_R" --first "$PFIRST" \
                --timeout "$SETUP_TIMEOUT" -c 100
            tail -1 "$RAW" | grep -q '"valid":true' && break
        done
    done ;;
esac

# The servers of round $1 in order: AVAILABLE's, except that kurier and kurier-base trade
# places in even rounds (when both run), so that neither always runs right after the other.
round_order() {
    local s both=0
    [[ " ${AVAILABLE[*]} " == *" kurier "* && " ${AVAILABLE[*]} " == *" kurier-base "* ]] && both=1
    for s in "${AVAILABLE[@]}"; do
        if [ $both = 1 ] && [ $(($1 % 2)) = 0 ]; then
            case $s in kurier) s=kurier-base ;; kurier-base) s=kurier ;; esac
        fi
        echo "$s"
    done
}

for ((r = 1; r <= ROUNDS; r++)); do
    for w in $WORKLOADS; do
        if [ "$w" = msg-half ] && [ -z "$MSG_HALF_RATE" ]; then
            MSG_HALF_RATE=$(half_rate_from_runs)
            if [ -z "$MSG_HALF_RATE" ]; then
                log "no valid Kurier msg run yet: msg-half skipped in round $r"
                continue
            fi
            log "msg-half: offering $MSG_HALF_RATE msg/s (half of Kurier's first valid msg run)"
        fi
        for s in $(round_order "$r"); do
            runs_workload "$s" "$w" || continue
            # shellcheck disable=SC2046
            run_bench "$s" "$w" "$r" $(workload_args "$w")
        done
    done
done

# ------------------------------------------------------------------ report
{
    echo "QUICK=$QUICK ROUNDS=$ROUNDS SERVERS=\"$SERVERS\" WORKLOADS=\"$WORKLOADS\""
    echo "IDLE_N=$IDLE_N IDLE_HOLD=$IDLE_HOLD IDLE_RATE=$IDLE_RATE PRESENCE_R=$PRESENCE_R"
    echo "MSG_PAIRS=$MSG_PAIRS MSG_WINDOW=$MSG_WINDOW MSG_WARMUP=$MSG_WARMUP MSG_DURATION=$MSG_DURATION"
    echo "LOGIN_N=$LOGIN_N LOGIN_C=$LOGIN_C SETUP_TIMEOUT=$SETUP_TIMEOUT"
    echo "MSG_HALF_RATE=${MSG_HALF_RATE:-} HALF_SERVERS=\"$HALF_SERVERS\" MSG_HALF_WINDOW=$MSG_HALF_WINDOW"
    echo "PIN=$PIN LOAD_AT_START=$LOAD_AT_START"
    case " $SERVERS " in *" kurier-base "*)
        echo "KURIER_BASE_PORT=$KURIER_BASE_PORT BASE_REF=$BASE_REF" \
            "BASE_KURIERD=$BASE_KURIERD BASE_KURIERCTL=$BASE_KURIERCTL" ;;
    esac
} > "$RESULTS/settings.txt"
"$PY" "$REPO/scripts/bench_report.py" report "$RESULTS" "$REPORT" "$SUMMARY"
log "wrote $REPORT and $SUMMARY (raw: $RAW)"
