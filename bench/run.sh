#!/usr/bin/env bash
# Relay benchmarks: squall-relay beside the Node `ws` peer, same run, same
# client (relay/examples/bench_client.rs). Prints the figures and ratios that
# results/BENCHMARKS.md quotes. Loopback only. Usage: bench/run.sh [--quick]
#   1. connections held by one relay process (target 19,000)
#   2. RSS per idle connection (from the same run)
#   3. deliveries/s with 10,000 subscribers on one topic: the highest swept
#      publish rate with zero loss, no subscriber disconnected and p99 under
#      P99_LIMIT_MS (a relay that only catches up in the drain is not keeping up)
#   4. p99 delivery latency at half that rate, and both relays' p99 at one
#      common rate (half the lower of the two maxima)
#   5. paired runs: both relays at the same PAIRED_RATES, alternating, REPS
#      times each; medians (the box is shared: single runs are noisy)
set -euo pipefail
cd "$(dirname "$0")/.."

HOLD=${HOLD:-19000}
SUBS=${SUBS:-10000}
RATES=${RATES:-"5 10 20 30 45 60 80"}
WINDOW=${WINDOW:-5s}
P99_LIMIT_MS=${P99_LIMIT_MS:-1000}
PAIRED_RATES=${PAIRED_RATES:-"5 20"}
REPS=${REPS:-3}
SKIP_SWEEP=${SKIP_SWEEP:-0}
if [[ "${1:-}" == "--quick" ]]; then HOLD=2000; SUBS=1000; RATES="5 10"; WINDOW=2s; PAIRED_RATES=5; REPS=1; fi

cargo build --release -q -p squall-relay --bin squall-relay --example bench_client
(cd bench/node && npm install --no-audit --no-fund --silent >/dev/null)
CLIENT=target/release/examples/bench_client
TMP=$(mktemp -d)
PID=
trap 'if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT

start() { # start RELAY -> sets PID and ADDR
  rm -f "$TMP/ready"
  case "$1" in
    squall) target/release/squall-relay --addr 127.0.0.1:0 --no-auth --ready-file "$TMP/ready" \
              --idle-timeout 10m --rate-limit 0 2>"$TMP/relay.log" & ;;
    node)   node bench/node/relay.js --no-auth --port 0 --ready-file "$TMP/ready" 2>"$TMP/relay.log" & ;;
  esac
  PID=$!
  for _ in $(seq 100); do [[ -s "$TMP/ready" ]] && break; sleep 0.1; done
  ADDR=$(cat "$TMP/ready")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" | head -1; }
fanout() { # RELAY RATE -> prints the client's two lines
  start "$1"
  "$CLIENT" --url "ws://$ADDR/ws" fanout --subscribers "$SUBS" --publishers 10 --rate "$2" \
    --duration "$WINDOW" --warmup 2s || true
  stop
}

ratio() { awk "BEGIN{ if ($2+0 == 0) print \"n/a\"; else printf \"%.2f\", $1/$2 }"; }
median() { sort -g | awk '{v[NR]=$1} END{print (NR ? v[int((NR+1)/2)] : "n/a")}'; }

if [[ "$SKIP_SWEEP" != "1" ]]; then
declare -A held rss best best_rate p99 p99_rate common_p99
for relay in squall node; do
  start "$relay"
  out=$("$CLIENT" --url "ws://$ADDR/ws" hold --connections "$HOLD" --relay-pid "$PID" --settle 3s)
  stop
  echo "$relay $out" | sed "s/^/# /"
  held[$relay]=$(echo "$out" | field established)
  rss[$relay]=$(echo "$out" | field rss_bytes_per_connection)

  best[$relay]=0
  for rate in $RATES; do
    out=$(fanout "$relay" "$rate")
    echo "$relay rate=$rate $out" | sed "s/^/# /"
    loss=$(echo "$out" | field loss); closed=$(echo "$out" | field subscribers_closed)
    late=$(echo "$out" | field p99 | awk -v lim="$P99_LIMIT_MS" '{print ($1 > lim)}')
    if [[ "$loss" != "0" || "$closed" != "0" || "$late" != "0" ]]; then break; fi
    best[$relay]=$(echo "$out" | field deliveries_per_s)
    best_rate[$relay]=$rate
  done
  if [[ "${best[$relay]}" != "0" ]]; then
    half=$(awk "BEGIN{print ${best_rate[$relay]}/2}")
    out=$(fanout "$relay" "$half")
    echo "$relay rate=$half $out" | sed "s/^/# /"
    p99[$relay]=$(echo "$out" | field p99)
    p99_rate[$relay]=$(echo "$out" | field deliveries_per_s)
  else
    p99[$relay]=n/a; p99_rate[$relay]=0
  fi
done

common=$(awk "BEGIN{a=${best_rate[squall]:-0}; b=${best_rate[node]:-0}; m=(a<b?a:b); print (m>0?m/2:1)}")
for relay in squall node; do
  out=$(fanout "$relay" "$common")
  echo "$relay rate=$common $out" | sed "s/^/# /"
  common_p99[$relay]=$(echo "$out" | field p99)
done
common_deliveries=$(awk "BEGIN{print $common*$SUBS}")

echo
echo "| figure | squall-relay | node ws peer | squall/node |"
echo "|---|---|---|---|"
echo "| connections held (of $HOLD) | ${held[squall]} | ${held[node]} | $(ratio "${held[squall]}" "${held[node]}") |"
echo "| RSS per idle connection (bytes) | ${rss[squall]} | ${rss[node]} | $(ratio "${rss[squall]}" "${rss[node]}") |"
echo "| deliveries/s, $SUBS subscribers, zero loss, p99 <= $P99_LIMIT_MS ms | ${best[squall]} | ${best[node]} | $(ratio "${best[squall]}" "${best[node]}") |"
echo "| p99 ms at half its own maximum | ${p99[squall]} (at ${p99_rate[squall]}/s) | ${p99[node]} (at ${p99_rate[node]}/s) | - |"
echo "| p99 ms at the same $common_deliveries deliveries/s | ${common_p99[squall]} | ${common_p99[node]} | $(ratio "${common_p99[squall]}" "${common_p99[node]}") |"
fi

declare -A p99s losses
for rep in $(seq "$REPS"); do
  for rate in $PAIRED_RATES; do
    for relay in squall node; do
      out=$(fanout "$relay" "$rate")
      echo "$relay rate=$rate rep=$rep $out" | sed "s/^/# /"
      p99s[$relay,$rate]+="$(echo "$out" | field p99) "
      losses[$relay,$rate]+="$(echo "$out" | field loss) "
    done
  done
done
echo
echo "| paired: deliveries/s ($SUBS subscribers) | squall p99 ms (median of $REPS) | node p99 ms (median of $REPS) | squall/node | lost (squall; node, per run) |"
echo "|---|---|---|---|---|"
for rate in $PAIRED_RATES; do
  sq=$(echo ${p99s[squall,$rate]} | tr ' ' '\n' | median)
  nd=$(echo ${p99s[node,$rate]} | tr ' ' '\n' | median)
  echo "| $(awk "BEGIN{print $rate*$SUBS}") | $sq | $nd | $(ratio "$sq" "$nd") | ${losses[squall,$rate]% }; ${losses[node,$rate]% } |"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
