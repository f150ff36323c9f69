#!/usr/bin/env bash
# slowlink_test.sh [PATH/TO/braid-slowlink]
# Checks launch/braid-slowlink: the tbf qdisc is in place while the command runs, only lo
# exists in the namespace, exit statuses pass through, the namespace is removed after
# success, failure, SIGTERM and SIGINT, bad arguments exit 2, and an MPI job inside runs
# over TCP on the shaped lo. No timing assertions. Exits 0 on pass, 1 on failure, and 77
# (skipped) where network namespaces or tbf cannot be set up (not root, no iproute2, no
# permission).
set -u

here=$(cd "$(dirname "$0")" && pwd)
slowlink=${1:-$here/../launch/braid-slowlink}
mpirun_cmd=${MPIEXEC:-mpirun}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/braid-slowlink-test.XXXXXX")
bg_pid=""
trap '[ -n "$bg_pid" ] && kill -KILL "$bg_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() { echo "SKIP: $*"; exit 77; }

# ---- can this machine host the emulator at all? ---------------------------------------
[ -x "$slowlink" ] || { echo "FAIL: $slowlink is missing or not executable"; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null && command -v tc >/dev/null || skip "ip/tc (iproute2) not installed"
probe=braid-slowtest-$$
if ! out=$(ip netns add "$probe" 2>&1); then
  skip "cannot create a network namespace here: $out"
fi
if ! out=$(ip netns exec "$probe" tc qdisc add dev lo root tbf rate 1mbit burst 128kb latency 50ms 2>&1); then
  ip netns delete "$probe"
  skip "tc tbf is not available here: $out"
fi
ip netns delete "$probe"

# ns_exists NAME: is a namespace called NAME listed?
ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

# expect CODE REGEX -- ARGS...: run braid-slowlink ARGS; check exit CODE and REGEX in output.
expect() {
  local want=$1 regex=$2 out code
  shift 3
  out=$("$slowlink" "$@" 2>&1)
  code=$?
  if [ "$code" -ne "$want" ]; then
    fail "'$*' exited $code, expected $want; output: $out"
  elif ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then
    fail "'$*' output does not match /$regex/: $out"
  else
    pass "'$*' -> exit $code, /$regex/"
  fi
}

# ---- usage ----------------------------------------------------------------------------
expect 0 '^Usage: braid-slowlink --rate R' -- --help
expect 2 'missing --rate' -- -- true
expect 2 'no command given after --' -- --rate 10mbit --
expect 2 'no command given after --' -- --rate 10mbit
expect 2 "unknown option '--bogus'" -- --rate 10mbit --bogus -- true
expect 2 'option --rate needs a value' -- --rate
expect 2 'tc rejected.*illegal value for "rate": "10xbit"' -- --rate 10xbit -- true
expect 2 'tc rejected.*illegal value for "latency"' -- --rate 10mbit --latency soon -- true
expect 2 'smaller than one full-size packet' -- --rate 10mbit --burst 4kb -- true
expect 2 '--mtu must be an integer' -- --rate 10mbit --mtu 9 -- true

# ---- shaping is in place while the command runs; only lo exists ------------------------
out=$("$slowlink" -q --rate 100mbit -- sh -c 'echo "ns=$BRAID_SLOWLINK_NETNS"; tc qdisc show dev lo; ip -o link show' 2>&1)
code=$?
ns=$(printf '%s\n' "$out" | sed -n 's/^ns=//p')
if [ "$code" -eq 0 ] && printf '%s\n' "$out" | grep -Eq '^qdisc tbf .*root.* rate 100Mbit .*lat 50ms'; then
  pass "tbf rate 100Mbit (default latency 50ms) on lo inside the namespace"
else
  fail "no tbf rate 100Mbit qdisc on lo inside the namespace (exit $code): $out"
fi
links=$(printf '%s\n' "$out" | grep -Ec '^[0-9]+: ')
if [ "$links" -eq 1 ] && printf '%s\n' "$out" | grep -Eq '^[0-9]+: lo: .*UP'; then
  pass "the namespace has exactly one interface, lo, and it is up"
else
  fail "expected only lo (up) in the namespace: $out"
fi
if [ -n "$ns" ] && ! ns_exists "$ns"; then pass "namespace '$ns' removed after success"
else fail "namespace '${ns:-?}' still present (or unnamed) after success"; fi

expect 0 'rate 1Gbit burst (256Kb|2621[0-9]{2}b) lat 20ms' -- -q --rate 1gbit --burst 256kb --latency 20ms -- tc qdisc show dev lo
expect 0 '^1500$' -- -q --rate 10mbit --mtu 1500 -- cat /sys/class/net/lo/mtu
# --delay: a netem qdisc above the tbf where the kernel has sch_netem, else exit 125 saying so
# (and never a namespace left behind, checked at the end).
out=$("$slowlink" -q --rate 10mbit --delay 5ms -- tc qdisc show dev lo 2>&1)
code=$?
if [ "$code" -eq 0 ]; then
  grep -Eq 'netem 1: root.*delay 5ms' <<<"$out" && grep -Eq 'tbf 10: parent 1:1 rate 10Mbit' <<<"$out" &&
    pass "--delay puts netem above tbf" || fail "--delay: unexpected qdiscs: $out"
  expect 2 "tc rejected --delay 'soon'" -- --rate 10mbit --delay soon -- true
else
  [ "$code" -eq 125 ] && grep -q "needs the kernel's netem qdisc" <<<"$out" &&
    pass "--delay without sch_netem: exit 125 naming it" || fail "--delay exited $code: $out"
fi
expect 0 '^braid-slow-[0-9]+' -- -q --rate 10mbit -- printenv BRAID_SLOWLINK_NETNS
out=$(echo through-stdin | "$slowlink" -q --rate 10mbit -- cat 2>&1)
[ "$out" = through-stdin ] && pass "stdin reaches the command" || fail "stdin lost: '$out'"

# ---- exit statuses pass through; namespace removed after failure -----------------------
expect 1 '' -- -q --rate 10mbit -- false
out=$("$slowlink" -q --rate 10mbit -- sh -c 'echo "ns=$BRAID_SLOWLINK_NETNS"; exit 7' 2>&1)
code=$?
ns=$(printf '%s\n' "$out" | sed -n 's/^ns=//p')
[ "$code" -eq 7 ] && pass "exit 7 passes through" || fail "'exit 7' gave exit $code: $out"
if [ -n "$ns" ] && ! ns_exists "$ns"; then pass "namespace '$ns' removed after a failing command"
else fail "namespace '${ns:-?}' still present (or unnamed) after a failing command"; fi
expect 127 '' -- -q --rate 10mbit -- braid-no-such-command-$$

# ---- signals: the command is stopped, the namespace removed, exit 128+N -----------------
# The command writes the namespace name and its pid (sh execs sleep, so that is sleep's
# pid) to a file once it runs; polling for that file is bounded.
signal_case() {  # SIGNAME EXPECTED_EXIT
  local sig=$1 want=$2 marker=$tmp/running.$1 code ns pid _
  set -m  # own process group, so the script does not start with SIGINT ignored
  "$slowlink" -q --rate 10mbit -- sh -c "echo \$BRAID_SLOWLINK_NETNS \$\$ > $marker.tmp && mv $marker.tmp $marker && exec sleep 60" &
  bg_pid=$!
  set +m
  for _ in $(seq 1 300); do [ -s "$marker" ] && break; sleep 0.1; done
  if [ ! -s "$marker" ]; then
    fail "SIG$sig case: the command did not start within 30 s"
    kill -KILL "$bg_pid" 2>/dev/null; wait "$bg_pid" 2>/dev/null; bg_pid=""; return
  fi
  read -r ns pid < "$marker"
  ns_exists "$ns" || fail "SIG$sig case: namespace '$ns' not listed while the command runs"
  kill -"$sig" "$bg_pid"
  for _ in $(seq 1 300); do kill -0 "$bg_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$bg_pid" 2>/dev/null; then
    fail "SIG$sig case: braid-slowlink still running 30 s after SIG$sig"
    kill -KILL "$bg_pid" 2>/dev/null
  fi
  wait "$bg_pid"
  code=$?
  bg_pid=""
  [ "$code" -eq "$want" ] && pass "SIG$sig -> exit $code" || fail "SIG$sig gave exit $code, expected $want"
  if ns_exists "$ns"; then fail "SIG$sig case: namespace '$ns' still present"
  else pass "SIG$sig case: namespace '$ns' removed"; fi
  if [ -e "/proc/$pid" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null &&
     grep -q sleep "/proc/$pid/comm" 2>/dev/null; then
    fail "SIG$sig case: the command (pid $pid) is still running"
    kill -KILL "$pid" 2>/dev/null
  else
    pass "SIG$sig case: the command was stopped"
  fi
}
signal_case TERM 143
signal_case INT 130

# ---- MPI inside: forced onto TCP over the shaped lo ------------------------------------
if ! command -v "$mpirun_cmd" >/dev/null; then
  fail "$mpirun_cmd not found; cannot check MPI inside the namespace"
else
  mpi=("$mpirun_cmd" --oversubscribe -np 2)
  [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
  out=$("$slowlink" -q --rate 1gbit -- "${mpi[@]}" sh -c 'echo "$OMPI_MCA_pml $OMPI_MCA_btl $OMPI_MCA_btl_tcp_if_include $OMPI_MCA_oob_tcp_if_include"' 2>&1)
  code=$?
  if [ "$code" -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -cx 'ob1 tcp,self lo lo')" -eq 2 ]; then
    pass "mpirun -np 2 runs inside; both ranks see pml=ob1 btl=tcp,self, if_include=lo"
  else
    fail "mpirun -np 2 inside the namespace (exit $code): $out"
  fi

  # A real exchange: 2 ranks swap 4 MiB with MPI_Sendrecv and check it, then tc's counter
  # must show at least 8 MiB sent through lo's tbf, i.e. the data went over TCP on lo
  # rather than shared memory.
  if command -v mpicc >/dev/null; then
    cat > "$tmp/exchange.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int n = 1 << 20;  /* 4 MiB of int */
  int* out = malloc(sizeof(int) * n);
  int* in = malloc(sizeof(int) * n);
  for (int i = 0; i < n; ++i) out[i] = rank * 7 + i;
  int peer = (rank + 1) % size, from = (rank + size - 1) % size, bad = 0;
  MPI_Sendrecv(out, n, MPI_INT, peer, 0, in, n, MPI_INT, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  for (int i = 0; i < n; ++i) bad += in[i] != from * 7 + i;
  printf("rank %d exchange %s\n", rank, bad ? "WRONG" : "ok");
  free(out); free(in);
  MPI_Finalize();
  return bad != 0;
}
EOF
    if mpicc -O1 -o "$tmp/exchange" "$tmp/exchange.c" 2>"$tmp/cc.log"; then
      out=$("$slowlink" -q --rate 1gbit -- sh -c '"$@" && tc -s qdisc show dev lo' sh "${mpi[@]}" "$tmp/exchange" 2>&1)
      code=$?
      sent=$(printf '%s\n' "$out" | sed -n 's/^ *Sent \([0-9]*\) bytes.*/\1/p' | head -n 1)
      if [ "$code" -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c 'exchange ok')" -eq 2 ] &&
         [ -n "$sent" ] && [ "$sent" -ge $((8 << 20)) ]; then
        pass "2-rank MPI exchange correct inside; $sent bytes went through lo's tbf"
      else
        fail "MPI exchange inside the namespace (exit $code, tbf sent '${sent:-?}' bytes, want >= $((8 << 20))): $out"
      fi
    else
      fail "mpicc could not build the exchange test: $(cat "$tmp/cc.log")"
    fi
  else
    echo "NOTE: mpicc not found; skipped the MPI data exchange check"
  fi
fi

# ---- verdict ---------------------------------------------------------------------------
if [ "$failures" -eq 0 ]; then
  echo "slowlink_test: all checks passed"
  exit 0
fi
echo "slowlink_test: $failures check(s) failed"
exit 1
