# Shared by run.sh and instructions.sh (sourced, from the repository root).

# Installs, from Debian's packages, each of the named commands that is missing (each
# command's package has its name).
install_missing() {
  local missing=() c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "== installing ${missing[*]}"
  $sudo apt-get update
  $sudo apt-get install -y "${missing[@]}"
}

build_load_server() {
  echo "== building load-server (release)"
  cargo build --release -p gw-benches --bin load-server
}

# Prints the address load-server $1 (a pid) logs to $2 once it listens; fails, showing
# the log, if it exits or has not started after two minutes.
wait_listening() {
  local pid="$1" log="$2" addr="" i
  for i in $(seq 1 1200); do
    addr="$(grep -o 'http://[0-9.:]*' "$log" | head -1 || true)"
    if [ -n "$addr" ]; then
      echo "$addr"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      echo "load-server died" >&2
      return 1
    fi
    sleep 0.1
  done
  cat "$log" >&2
  echo "load-server did not start" >&2
  return 1
}
