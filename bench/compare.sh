#!/usr/bin/env bash
# Issue 12's three ratios in one run, each against its peer in the same run
# (results/BENCHMARKS.md quotes the output). Loopback only. Installs its peers
# itself: a plain Python `websockets` client in a venv under target/ (pinned in
# bench/python/requirements.txt) and the Node `ws` relay of bench/node.
#
#   (a) loadgen CPU-s per million received deliveries: `squall run` against
#       one squall-relay with the Python client beside it on the same relay,
#       same topics, same stream (A_SOCKETS each, A_TOPICS topics, A_RATE
#       msg/s published by squall: A_DELIVERIES deliveries/s to each side).
#       CPU is user+sys of each whole process (getrusage), over its received
#       deliveries.
#   (b) loadgen peak RSS per socket: `/usr/bin/time -v squall run` of a
#       builtin target with B_SOCKETS JWT sockets under traffic, in one
#       process; the peak (VmHWM) of the squall process itself divided by the
#       established sockets. (time -v's maximum is also printed: it is the
#       largest of squall and its relay child.)
#   (c) relay deliveries per relay CPU-second: squall-relay and the Node peer,
#       one after the other, each loaded by the same `squall run` (C_SOCKETS
#       sockets, C_TOPICS topics, C_RATE msg/s); the relay's CPU (from
#       /proc/PID/stat) over a steady window of the run, against the
#       deliveries counted in that window; p99 of each whole run; and RSS per
#       idle connection (bench_client hold: RSS growth / HOLD connections).
#
# Usage: bench/compare.sh [--quick]     (REPS=N repeats (a) and (c), alternating)
# Knobs (environment): A_SOCKETS A_TOPICS A_RATE A_SECONDS B_SOCKETS B_SECONDS
#   C_SOCKETS C_TOPICS C_RATE C_SECONDS HOLD REPS; CARGO (e.g. "flock LOCK cargo");
#   SKIP_BUILD=1 uses the binaries already built; ONLY=ac (any of a, b, c) runs
#   only those parts (the others print n/a).
set -euo pipefail
cd "$(dirname "$0")/.."

A_SOCKETS=${A_SOCKETS:-1000}; A_TOPICS=${A_TOPICS:-10}; A_RATE=${A_RATE:-200}; A_SECONDS=${A_SECONDS:-20}
B_SOCKETS=${B_SOCKETS:-18000}; B_SECONDS=${B_SECONDS:-25}
C_SOCKETS=${C_SOCKETS:-2000}; C_TOPICS=${C_TOPICS:-10}; C_RATE=${C_RATE:-200}; C_SECONDS=${C_SECONDS:-20}
HOLD=${HOLD:-19000}; REPS=${REPS:-1}; ONLY=${ONLY:-abc}
if [[ "${1:-}" == "--quick" ]]; then
  A_SECONDS=8; B_SOCKETS=3000; B_SECONDS=10; C_SECONDS=10; HOLD=2000
fi
CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release
VENV=target/bench-py

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  $CARGO build --release -q -p squall --bin squall --bin squall-relay
  $CARGO build --release -q -p squall-relay --example bench_client
fi
if [[ ! -x "$VENV/bin/python" ]]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r bench/python/requirements.txt
(cd bench/node && npm ci --no-audit --no-fund --silent >/dev/null)

TMP=$(mktemp -d)
declare -a A_SQ=() A_PY=()
declare -A C_DPS=() C_P99=() C_RSS=([squall]=0 [node]=0)
established=0; per_socket=0
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }'; }
median() { sort -g | awk 'NF{v[++n]=$1} END{print (n ? v[int((n+1)/2)] : "n/a")}'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
results() { ls "$1"/*[0-9]Z.json; }

start_relay() { # KIND -> sets RELAY_PID, RELAY_ADDR
  rm -f "$TMP/ready"
  case "$1" in
    squall) "$BIN/squall-relay" --addr 127.0.0.1:0 --no-auth --rate-limit 0 --idle-timeout 10m \
              --ready-file "$TMP/ready" 2>>"$TMP/relay.log" & ;;
    node) node bench/node/relay.js --no-auth --port 0 --ready-file "$TMP/ready" 2>>"$TMP/relay.log" & ;;
  esac
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  for _ in $(seq 100); do [[ -s "$TMP/ready" ]] && break; sleep 0.1; done
  RELAY_ADDR=$(cat "$TMP/ready")
}
stop_relay() { kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; }

scenario() { # NAME URL SOCKETS TOPICS PUBLISHERS RATE SECONDS RAMP -> a url-target scenario file
  cat >"$TMP/$1.toml" <<EOF
name = "$1"
duration = "${7}s"
drain = "2s"
[target]
kind = "url"
url = "ws://$2/ws"
health = "http://$2/health"
[auth]
kind = "none"
[load]
connections = $3
ramp = "${8}s"
topics = $4
publishers = $5
rate = $6
payload_bytes = 256
EOF
  echo "$TMP/$1.toml"
}

echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!results' || echo '+dirty'), $(nproc) cores, load average at start: $(load)"

if [[ "$ONLY" == *a* ]]; then
# (a) loadgen CPU per million received deliveries, beside the Python client.
for rep in $(seq "$REPS"); do
  start_relay squall
  file=$(scenario loadgen "$RELAY_ADDR" "$A_SOCKETS" "$A_TOPICS" 100 "$A_RATE" "$A_SECONDS" 2)
  "$VENV/bin/python" loadgen/benches/peer_subscriber.py "ws://$RELAY_ADDR/ws" "$A_SOCKETS" "$A_TOPICS" \
    $((A_SECONDS + 5)) >"$TMP/py.json" &
  py=$!
  sleep 1
  /usr/bin/time -f "%U %S" -o "$TMP/a.time" "$BIN/squall" run "$file" --no-tui --out "$TMP/a$rep" \
    >/dev/null 2>"$TMP/a.err"
  wait "$py"
  stop_relay
  read -r user sys <"$TMP/a.time"
  r=$(results "$TMP/a$rep")
  sq_rcv=$(jq .messages.received "$r")
  sq=$(awk -v u="$user" -v s="$sys" -v n="$sq_rcv" 'BEGIN{printf "%.2f", (u+s)*1e6/n}')
  py_rcv=$(jq .received "$TMP/py.json")
  py_cpu=$(jq .cpu_s "$TMP/py.json")
  pyv=$(awk -v c="$py_cpu" -v n="$py_rcv" 'BEGIN{printf "%.2f", c*1e6/n}')
  A_SQ+=("$sq"); A_PY+=("$pyv")
  echo "# (a) rep $rep: squall $(awk -v a="$user" -v b="$sys" 'BEGIN{print a+b}') CPU-s, $sq_rcv received" \
    "(lost $(jq .messages.lost "$r"), p99 $(jq .latency_ms.p99 "$r") ms) = $sq per million;" \
    "python $py_cpu CPU-s, $py_rcv received = $pyv per million; load $(load)"
done
fi

if [[ "$ONLY" == *b* ]]; then
# (b) loadgen RSS per socket under traffic, one process, builtin target.
cat >"$TMP/rss.toml" <<EOF
name = "rss"
duration = "${B_SECONDS}s"
drain = "2s"
[target]
kind = "builtin"
[load]
connections = $B_SOCKETS
ramp = "$((B_SOCKETS / 1800 + 1))s"
topics = 100
publishers = 100
rate = 100
payload_bytes = 256
EOF
/usr/bin/time -v -o "$TMP/b.time" "$BIN/squall" run "$TMP/rss.toml" --no-tui --out "$TMP/b" \
  >/dev/null 2>"$TMP/b.err" &
timer=$!
PIDS+=("$timer")
sleep 0.5
squall_pid=$(pgrep -P "$timer" | head -1)
hwm=0
while kill -0 "$squall_pid" 2>/dev/null; do
  h=$(awk '/VmHWM/{print $2}' "/proc/$squall_pid/status" 2>/dev/null || true)
  [[ -n "$h" ]] && hwm=$h
  sleep 0.2
done
wait "$timer" || true
r=$(results "$TMP/b")
established=$(jq .connections.established "$r")
time_max=$(awk -F': ' '/Maximum resident/{print $2}' "$TMP/b.time")
per_socket=$((hwm * 1024 / (established > 0 ? established : 1)))
echo "# (b) $established of $B_SOCKETS established, $(jq .messages.received "$r") received, lost" \
  "$(jq .messages.lost "$r"), p99 $(jq .latency_ms.p99 "$r") ms; squall VmHWM $hwm KiB;" \
  "time -v maximum $time_max KiB; load $(load)"
fi

if [[ "$ONLY" == *c* ]]; then
# (c) relay deliveries per relay CPU-second, and RSS per idle connection.
for relay in squall node; do
  start_relay "$relay"
  out=$("$BIN/examples/bench_client" --url "ws://$RELAY_ADDR/ws" hold --connections "$HOLD" \
    --relay-pid "$RELAY_PID" --settle 3s)
  stop_relay
  C_RSS[$relay]=$(echo "$out" | sed -n 's/.*rss_bytes_per_connection=\([0-9]*\).*/\1/p')
  echo "$out" | sed "s/^/# (c) $relay /"
done
ticks=$(getconf CLK_TCK)
at_line() { until (($(wc -l <"$timeline") >= $1)); do sleep 0.01; done; }
for rep in $(seq "$REPS"); do
  for relay in squall node; do
    start_relay "$relay"
    file=$(scenario relay "$RELAY_ADDR" "$C_SOCKETS" "$C_TOPICS" 100 "$C_RATE" "$C_SECONDS" 2)
    out="$TMP/c-$relay-$rep"
    "$BIN/squall" run "$file" --no-tui --out "$out" >/dev/null 2>"$TMP/c.err" &
    client=$!
    until ls "$out"/*.timeline.ndjson >/dev/null 2>&1; do sleep 0.05; done
    timeline=$(ls "$out"/*.timeline.ndjson)
    # The window: the snapshot of second 4 (ramp over) to that of the last
    # second of publishing; the relay's CPU is read as each line appears.
    at_line 4; c1=$(cpu_ticks "$RELAY_PID"); d1=$(sed -n 4p "$timeline" | jq .messages.received)
    at_line "$C_SECONDS"; c2=$(cpu_ticks "$RELAY_PID"); d2=$(sed -n "${C_SECONDS}p" "$timeline" | jq .messages.received)
    wait "$client" || true
    stop_relay
    r=$(results "$out")
    dps=$(awk -v d=$((d2 - d1)) -v c=$((c2 - c1)) -v t="$ticks" 'BEGIN{printf "%.0f", (c > 0 ? d * t / c : 0)}')
    C_DPS[$relay]+="$dps "; C_P99[$relay]+="$(jq .latency_ms.p99 "$r") "
    echo "# (c) rep $rep $relay: $((d2 - d1)) deliveries in the window, relay CPU $(awk -v c=$((c2 - c1)) -v t="$ticks" 'BEGIN{print c/t}') s" \
      "= $dps per CPU-s; run: lost $(jq .messages.lost "$r"), p50 $(jq .latency_ms.p50 "$r") ms," \
      "p99 $(jq .latency_ms.p99 "$r") ms; load $(load)"
  done
done
fi

sq_a=$(printf '%s\n' "${A_SQ[@]}" | median); py_a=$(printf '%s\n' "${A_PY[@]}" | median)
sq_c=$(echo ${C_DPS[squall]:-} | tr ' ' '\n' | median); nd_c=$(echo ${C_DPS[node]:-} | tr ' ' '\n' | median)
sq_p=$(echo ${C_P99[squall]:-} | tr ' ' '\n' | median); nd_p=$(echo ${C_P99[node]:-} | tr ' ' '\n' | median)
echo
echo "| figure | squall | peer, same run | ratio | aim |"
echo "|---|---|---|---|---|"
echo "| (a) loadgen CPU-s per million received ($A_SOCKETS sockets, $A_TOPICS topics, $((A_RATE * A_SOCKETS / A_TOPICS)) deliveries/s each, ${A_SECONDS} s; median of $REPS) | $sq_a | Python websockets: $py_a | $(ratio "$py_a" "$sq_a")x less | >= 8x |"
echo "| (b) loadgen peak RSS per socket, $established sockets under traffic, one process | $per_socket B | - | $(ratio "$per_socket" 8192) of 8 KiB | <= 8192 B |"
echo "| (c) relay deliveries per relay CPU-s ($C_SOCKETS sockets, $C_RATE msg/s, $C_TOPICS topics; median of $REPS) | $sq_c | Node ws: $nd_c | $(ratio "$sq_c" "$nd_c")x | >= 2x |"
echo "| (c) p99 ms of those runs (median) | $sq_p | $nd_p | $(ratio "$sq_p" "$nd_p") | <= 1 |"
echo "| (c) RSS per idle connection ($HOLD held) | ${C_RSS[squall]} B | ${C_RSS[node]} B | $(ratio "${C_RSS[squall]}" "${C_RSS[node]}") | <= 1 |"
echo "load average at the end: $(load)"
