#!/usr/bin/env bash
# plot_runs_test.sh PATH/TO/plot_runs.py
# scripts/plot_runs.py on two synthetic run directories: loss vs step and test_accuracy vs
# time_s (and vs bytes_sent, which evaluation lines lack) each write a PNG; a field the file
# does not hold, an unknown field, a directory without metrics.jsonl and a line that is not
# JSON each exit 2 with a message naming the cause and the file.
set -u
script=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/braid-plot-runs-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# write_run DIR SCALE: four training lines and two evaluation lines in metrics.jsonl's format.
write_run() {
  mkdir -p "$1"
  for step in 10 20 30 40; do
    printf '{"step":%d,"epoch":0,"loss":%s,"lr":0.1,"samples_per_s":1000,"step_ms":5,' \
      "$step" "$(awk "BEGIN{print $2 / $step}")"
    printf '"comm_ms":1,"bytes_sent":%d,"bytes_recv":%d,"time_s":%s}\n' \
      $((step * 4000)) $((step * 4000)) "$(awk "BEGIN{print $step * 0.05}")"
    if [ $((step % 20)) -eq 0 ]; then
      printf '{"step":%d,"epoch":0,"test_loss":%s,"test_accuracy":%s,"time_s":%s}\n' "$step" \
        "$(awk "BEGIN{print $2 / $step}")" "$(awk "BEGIN{print 1 - $2 / $step}")" \
        "$(awk "BEGIN{print $step * 0.05 + 0.01}")"
    fi
  done >"$1/metrics.jsonl"
}
write_run "$tmp/runs/ring" 2
write_run "$tmp/runs/star" 3

# is_png FILE: exists and starts with the 8-byte PNG signature.
is_png() {
  [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}

# plots X Y: the two runs plotted, a PNG written, exit 0.
plots() {
  local out=$tmp/$1-$2.png
  if ! output=$("$script" "$tmp/runs/ring" "$tmp/runs/star/" --x "$1" --y "$2" -o "$out" 2>&1); then
    fail "$2 vs $1 exits non-zero: $output"
  elif ! is_png "$out"; then
    fail "$2 vs $1: $out is not a PNG"
  else
    pass "$2 vs $1 writes a PNG"
  fi
}
plots step loss
plots time_s test_accuracy
plots bytes_sent test_accuracy

# rejects WHAT REGEX ARGS...: exit 2, stderr matching REGEX, no image.
rejects() {
  local what=$1 regex=$2
  shift 2
  rm -f "$tmp/bad.png"
  output=$("$script" "$@" -o "$tmp/bad.png" 2>&1)
  code=$?
  if [ "$code" -ne 2 ]; then
    fail "$what: exit $code, expected 2: $output"
  elif ! grep -Eq -- "$regex" <<<"$output"; then
    fail "$what: message does not match /$regex/: $output"
  elif [ -e "$tmp/bad.png" ]; then
    fail "$what: an image was written anyway"
  else
    pass "$what: exit 2, $output"
  fi
}
mkdir -p "$tmp/runs/empty" "$tmp/runs/train_only" "$tmp/runs/broken"
grep '"loss"' "$tmp/runs/ring/metrics.jsonl" >"$tmp/runs/train_only/metrics.jsonl"
{ head -n 2 "$tmp/runs/ring/metrics.jsonl"; echo '{"step":'; } >"$tmp/runs/broken/metrics.jsonl"
rejects "a field absent from the file" "train_only/metrics.jsonl: no line has 'test_accuracy'" \
  "$tmp/runs/ring" "$tmp/runs/train_only" --x step --y test_accuracy
rejects "an unknown field" "invalid choice: 'accuracy'" "$tmp/runs/ring" --x step --y accuracy
rejects "a directory without metrics.jsonl" "empty/metrics.jsonl: no such file" \
  "$tmp/runs/ring" "$tmp/runs/empty" --x step --y loss
rejects "a line that is not JSON" "broken/metrics.jsonl:3: not a JSON object" \
  "$tmp/runs/broken" --x step --y loss

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all plot_runs checks passed"
