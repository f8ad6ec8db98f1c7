#!/bin/bash
# Instructions per request of `roster serve` under callgrind (deterministic,
# unlike timings on the shared 2-core machine). Usage:
#   bench/profile/callgrind.sh [REQUESTS] [CLIENTS]
# Builds an unstripped release binary with line tables into target/prof,
# creates a workspace + verified domain + static token in a temp dir, runs the
# server under valgrind, and drives it with drive.py: REQUESTS warm-up
# creates, then REQUESTS each of POST /Users, GET /Users/{id} and
# GET /Users?filter=userName eq, dumping one callgrind file per phase
# (.1 = POST, .2 = GET, .3 = filter). Divide PROGRAM TOTALS by REQUESTS.
# The driver opens CLIENTS new TLS connections per phase; their handshakes
# (~9M instructions for 8) are included in the totals.
set -euo pipefail
N=${1:-400}; T=${2:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release --bin roster --manifest-path "$ROOT/Cargo.toml" --target-dir "$ROOT/target/prof"
BIN="$ROOT/target/prof/release/roster"
W=$(mktemp -d /tmp/roster-prof.XXXXXX)
export ROSTER_NO_SYSTEM_CONFIG=1
"$BIN" init --data-dir "$W/data" >/dev/null
"$BIN" domain add --verified example.com --data-dir "$W/data" >/dev/null
TOK=$("$BIN" token create --name prof --data-dir "$W/data" | tail -1)
valgrind --tool=callgrind --callgrind-out-file="$W/cg.%p" "$BIN" serve --data-dir "$W/data" --listen 127.0.0.1:0 2>"$W/serve.log" &
VP=$!
for _ in $(seq 120); do grep -q "listening on" "$W/serve.log" && break; sleep 1; done
PORT=$(grep -o "listening on https://127.0.0.1:[0-9]*" "$W/serve.log" | cut -d: -f3)
python3 "$ROOT/bench/profile/drive.py" "$PORT" "$TOK" "$N" "$T" "$VP" 2>&1 | grep -v "^sending"
kill "$VP"; wait "$VP" 2>/dev/null || true
for f in "$W"/cg.*.[123]; do
  echo "$f: $(callgrind_annotate --threshold=100 "$f" 2>/dev/null | grep 'PROGRAM TOTALS')"
done
echo "inspect with: callgrind_annotate --inclusive=yes --threshold=100 FILE | less"
