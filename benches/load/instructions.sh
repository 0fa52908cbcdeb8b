#!/usr/bin/env bash
# Instructions per HTTP request: the bare server against the whole chain, counted by
# callgrind (issue 11). Unlike requests/s, the count does not move with what else the
# machine is doing, so two builds (or two machines) compare exactly.
#
# For each case it starts `load-server` under `valgrind --tool=callgrind` (one runtime
# worker), warms it up with keep-alive requests from one curl process, zeroes the counters
# (`callgrind_control`), sends more requests the same way and dumps the counters: the
# instructions a request costs in the server's user space (hyper, tokio, axum, the
# layers, and whatever the server does while it waits), startup and shutdown excluded.
# The kernel's share (sockets, wakeups) is not counted; `run.sh` reports it as the
# server's system CPU per request. Run from anywhere:
#
#   benches/load/instructions.sh
#
# Environment (defaults in brackets):
#   INSTR_CASES [bare chain-hit chain-miss]  space-separated, of those and the chain cut
#                    after a layer: upto-audit (Problem and Audit only), upto-auth,
#                    upto-service-auth, upto-rbac, upto-policy (chain-hit is the whole
#                    chain); INSTR_CASES=layers stands for bare, every cut and chain-hit,
#                    and the table then gives what each layer adds
#   INSTR_WARMUP [200]     requests before counting (caches filled, connections set up)
#   INSTR_REQUESTS [2000]  requests counted
#   LOAD_ALG [rs256]   token algorithm of the chain cases
#   LOAD_OUT [target/load]  where the callgrind files and server logs go
#
# chain-miss runs with the verified-token cache disabled (`--auth-cache 0`): every request
# verifies its signature.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CASES="${INSTR_CASES:-bare chain-hit chain-miss}"
if [ "$CASES" = layers ]; then
  CASES="bare upto-audit upto-auth upto-service-auth upto-rbac upto-policy chain-hit"
fi
WARM="${INSTR_WARMUP:-200}"
N="${INSTR_REQUESTS:-2000}"
ALG="${LOAD_ALG:-rs256}"
OUT="${LOAD_OUT:-$ROOT/target/load}"
BIN="$ROOT/target/release/load-server"
mkdir -p "$OUT"

# shellcheck source=benches/load/common.sh
. benches/load/common.sh
install_missing valgrind curl
build_load_server

trap 'exit 130' INT TERM

# Instructions per request of case $1 (load-server arguments after): one server under
# callgrind answers $WARM requests, its counters are zeroed, it answers $N more, and the
# counters are dumped; the dump divided by $N is the figure. It runs in a subshell
# (`$(count ...)`), which stops its server however it ends.
count() {
  local name="$1"; shift
  local base="$OUT/instr.$name"
  rm -f "$base".cg*
  SERVER_PID=""
  trap '[ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null; true' EXIT
  valgrind --tool=callgrind --callgrind-out-file="$base.cg" \
    "$BIN" "$@" --listen 127.0.0.1:0 --workers 1 --token-file "$base.tokens" \
    >"$base.log" 2>"$base.valgrind" &
  SERVER_PID=$!
  local addr
  addr="$(wait_listening "$SERVER_PID" "$base.log")" || { cat "$base.valgrind" >&2; exit 1; }
  send "$base.warm" "$WARM"
  callgrind_control --zero "$SERVER_PID" >/dev/null
  send "$base.measured" "$N"
  callgrind_control --dump "$SERVER_PID" >/dev/null
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" || { echo "load-server failed (see $base.log)" >&2; exit 1; }
  SERVER_PID=""
  local total
  total="$(awk '/^(summary|totals):/ {print $2}' "$base.cg.1" | tail -1)"
  echo $(( total / N ))
}

# $2 keep-alive requests on one connection (curl config $1), the same token each time
# (the cache-hit path when the cache is on); every answer must be 200.
send() {
  local file="$1" n="$2" i codes
  {
    printf 'header = "Authorization: %s"\n' "$(head -1 "$base.tokens")"
    printf 'header = "x-correlation-id: instr-0001"\n'
    for i in $(seq 1 "$n"); do
      printf 'url = "%s/api/v1/agents"\noutput = "/dev/null"\n' "$addr"
    done
  } >"$file"
  codes="$(curl -s -K "$file" -w '%{http_code}\n' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
  if [ "$codes" != "$n×200 " ]; then
    echo "$name: expected $n answers 200, got $codes" >&2
    exit 1
  fi
}

declare -A PER
for c in $CASES; do
  case "$c" in
    bare) args=(--mode bare) ;;
    chain-hit) args=(--mode chain --alg "$ALG") ;;
    chain-miss) args=(--mode chain --alg "$ALG" --auth-cache 0) ;;
    upto-*) args=(--mode chain --alg "$ALG" --upto "${c#upto-}") ;;
    *) echo "unknown case $c (bare, chain-hit, chain-miss, upto-LAYER, layers)"; exit 2 ;;
  esac
  echo "== $c: load-server ${args[*]} under callgrind, $WARM requests, then $N counted"
  PER[$c]="$(count "$c" "${args[@]}")"
  echo "$c: ${PER[$c]} instructions per request"
done

echo
echo "== instructions per request in the server's user space (callgrind, one worker; $N requests after $WARM)"
echo "| case              | instructions/request | vs bare | over the case above |"
echo "|-------------------|----------------------|---------|---------------------|"
prev=""
for c in $CASES; do
  ratio="-"
  if [ -n "${PER[bare]:-}" ] && [ "${PER[bare]}" -gt 0 ]; then
    ratio="$(awk -v a="${PER[$c]}" -v b="${PER[bare]}" 'BEGIN { printf "%.2f×", a / b }')"
  fi
  step="-"
  [ -n "$prev" ] && step=$(( PER[$c] - PER[$prev] ))
  printf '| %-17s | %20s | %7s | %19s |\n' "$c" "${PER[$c]}" "$ratio" "$step"
  prev="$c"
done
