#!/usr/bin/env bash
# HTTP load benchmark of the whole gw chain against a bare server (issue 11).
#
# For each case it starts `load-server` (benches/src/bin/load-server.rs), drives it with
# the same wrk load from a separate process, stops it, and prints requests/s, p50/p99
# latency, the ratio to the bare server and the server's CPU per request (user+system
# µs, from /proc). Run from anywhere:
#
#   benches/load/run.sh
#
# Environment (defaults in brackets):
#   WRK_THREADS [2]  WRK_CONNECTIONS [32]  WRK_DURATION [10s]   the wrk load
#   LOAD_ALG [rs256]      token algorithm of the chain cases (rs256 or eddsa)
#   LOAD_POOL [16]        tokens in the pool of the cache-hit cases
#   LOAD_AUDIT_BATCH [1000]  audit batch size of the backends case (gateway default: 100);
#                         its audit writer spools to $LOAD_OUT/audit-spool when PostgreSQL lags
#   LOAD_CASES [all]      space-separated subset of: bare chain-hit chain-miss
#                         chain-miss-eddsa backends-hit
#   LOAD_ROUNDS [1]       run all cases this many times, in turn; the table gives each
#                         case's median req/s and its ratio to the bare server of the
#                         same round (median, lowest and highest), as the ratio of one
#                         run moves by 10-20 points on a shared VM
#   WRK_SCHED [batch]     scheduling policy of wrk: batch (SCHED_BATCH, through chrt) or
#                         normal. On a machine where wrk shares the server's cores, a
#                         normal-policy wrk thread woken by a response preempts the server
#                         in the middle of its next request; the slower the server, the
#                         more often wrk sleeps and is woken, so this cost of sharing
#                         cores falls mostly on the chain (docs/benchmarks.md). With batch,
#                         wrk keeps its fair share of the CPU but waits for the tick
#                         instead of preempting. `normal` gives the figures of earlier runs.
#   LOAD_OUT [target/load]  where token pools, wrk output and server logs go
#   REDIS_URL, DATABASE_URL  backends of the backends-hit case
#
# The every-token-new case runs the chain with the verified-token cache disabled
# (`--auth-cache 0`), so every request verifies its signature; the pool stays small.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-32}"
DURATION="${WRK_DURATION:-10s}"
ALG="${LOAD_ALG:-rs256}"
POOL="${LOAD_POOL:-16}"
AUDIT_BATCH="${LOAD_AUDIT_BATCH:-1000}"
CASES="${LOAD_CASES:-bare chain-hit chain-miss chain-miss-eddsa backends-hit}"
ROUNDS="${LOAD_ROUNDS:-1}"
OUT="${LOAD_OUT:-$ROOT/target/load}"
SCHED="${WRK_SCHED:-batch}"
case "$SCHED" in
  batch) WRK=(chrt --batch 0 wrk) ;;
  normal) WRK=(wrk) ;;
  *) echo "WRK_SCHED=$SCHED: batch or normal"; exit 2 ;;
esac
BIN="$ROOT/target/release/load-server"
LUA="$ROOT/benches/load/tokens.lua"
mkdir -p "$OUT"

# shellcheck source=benches/load/common.sh
. benches/load/common.sh
install_missing wrk
build_load_server

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    return "$rc"
  fi
}
trap 'stop_server || true' EXIT
trap 'exit 130' INT TERM

# Latency as wrk prints it (850.00us, 1.23ms, 1.01s) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { print "?" } }'
}

# Per case and round ("$case.$round"): RPS. Per case, from its last round: P50, P99,
# AUDIT, LOADAVG (1-minute load before the case), SCPU (the server's user+system CPU per
# request, in µs). Per case, summed over rounds: BAD, LOST.
declare -A RPS P50 P99 BAD AUDIT LOADAVG LOST SCPU
run_case() {
  local name="$1" round="$2"; shift 2
  local tokens="$OUT/$name.tokens" log="$OUT/$name.server.log" res="$OUT/$name.wrk.txt"
  echo "== $name: load-server $*"
  rm -rf "$OUT/audit-spool"
  "$BIN" "$@" --token-file "$tokens" >"$log" 2>&1 &
  SERVER_PID=$!
  local addr
  addr="$(wait_listening "$SERVER_PID" "$log")" || exit 1
  LOADAVG[$name]="$(cut -d' ' -f1 /proc/loadavg)"
  local cpu0 cpu1
  cpu0="$(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")"
  "${WRK[@]}" -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$addr/api/v1/agents" -- "$tokens" | tee "$res"
  cpu1="$(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")"
  # The server's own CPU per answered request, user and system (kernel: sockets, wakeups).
  SCPU[$name]="$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" \
    -v n="$(awk '/requests in/ {print $1}' "$res")" 'BEGIN {
      split(a, x, " "); split(b, y, " ");
      if (n > 0) printf "%.1f+%.1f", (y[1] - x[1]) / hz * 1e6 / n, (y[2] - x[2]) / hz * 1e6 / n
      else print "-" }')"
  local rc=0
  stop_server || rc=$?
  cat "$log"
  if [ "$rc" -ne 0 ]; then echo "load-server exited with $rc (see $log)"; exit 1; fi
  RPS[$name.$round]="$(awk '/^Requests\/sec:/ {print $2}' "$res")"
  P50[$name]="$(to_ms "$(awk '$1 == "50%" {print $2}' "$res")")"
  P99[$name]="$(to_ms "$(awk '$1 == "99%" {print $2}' "$res")")"
  local bad
  bad="$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$res")"
  BAD[$name]=$(( ${BAD[$name]:-0} + ${bad:-0} ))
  AUDIT[$name]="$(grep -o 'answered=[0-9]* rows=[0-9]* lost=[0-9]*' "$log" || echo -)"
  local lost
  lost="$(grep -o 'lost=[0-9]*' "$log" | head -1 | cut -d= -f2 || true)"
  LOST[$name]=$(( ${LOST[$name]:-0} + ${lost:-0} ))
}

for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    [ "$ROUNDS" -gt 1 ] && echo "== round $r of $ROUNDS"
    case "$c" in
      bare) run_case bare "$r" --mode bare --tokens "$POOL" ;;
      chain-hit) run_case chain-hit "$r" --mode chain --alg "$ALG" --tokens "$POOL" ;;
      chain-miss) run_case chain-miss "$r" --mode chain --alg "$ALG" --tokens "$POOL" --auth-cache 0 ;;
      chain-miss-eddsa) run_case chain-miss-eddsa "$r" --mode chain --alg eddsa --tokens "$POOL" --auth-cache 0 ;;
      backends-hit) run_case backends-hit "$r" --mode chain-backends --alg "$ALG" --tokens "$POOL" --audit-batch "$AUDIT_BATCH" --audit-spool "$OUT/audit-spool" ;;
      *) echo "unknown case $c"; exit 2 ;;
    esac
  done
done

# "lowest median highest" of the numbers on standard input, one a line.
spread() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s %s %s\n", v[1], m, v[NR] }'
}

echo "== raw signature verification (one thread)"
VERIFY_RS="$("$BIN" verify-rate --alg rs256 --seconds 2)"
VERIFY_ED="$("$BIN" verify-rate --alg eddsa --seconds 2)"
echo "$VERIFY_RS"
echo "$VERIFY_ED"

echo
echo "== results: wrk -t$THREADS -c$CONNS -d$DURATION --latency (policy $SCHED), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ROUNDS round(s)"
echo "(req/s: median over rounds; vs bare: median of each round's ratio, lowest-highest in brackets; p50, p99, server CPU, audit, load1: last round; non-2xx, lost: all rounds)"
printf '| %-17s | %10s | %-16s | %9s | %9s | %-11s | %7s | %-40s | %5s | %5s |\n' case "req/s" "vs bare" "p50 ms" "p99 ms" "cpu us/req" "non-2xx" "audit (last round)" "lost" "load1"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "-------------------" "------------" "------------------" "-----------" "-----------" "-------------" "---------" "------------------------------------------" "-------" "-------"
for c in $CASES; do
  read -r _ rps _ < <(for r in $(seq 1 "$ROUNDS"); do echo "${RPS[$c.$r]}"; done | spread)
  ratio="-"
  if [[ " $CASES " == *" bare "* ]]; then
    read -r lo mid hi < <(for r in $(seq 1 "$ROUNDS"); do
      awk -v a="${RPS[$c.$r]}" -v b="${RPS[bare.$r]}" 'BEGIN { printf "%.1f\n", 100 * a / b }'
    done | spread)
    if [ "$ROUNDS" -gt 1 ]; then
      ratio="$(printf '%.0f %% (%.0f-%.0f)' "$mid" "$lo" "$hi")"
    else
      ratio="$(printf '%.0f %%' "$mid")"
    fi
  fi
  printf '| %-17s | %10s | %-16s | %9s | %9s | %-11s | %7s | %-40s | %5s | %5s |\n' "$c" "$rps" "$ratio" "${P50[$c]}" "${P99[$c]}" "${SCPU[$c]}" "${BAD[$c]}" "${AUDIT[$c]}" "${LOST[$c]}" "${LOADAVG[$c]}"
done
echo "(verify: $VERIFY_RS; $VERIFY_ED)"
