#!/usr/bin/env bash
# expect_exit.sh CODE REGEX -- COMMAND...
# Runs COMMAND; passes when it exits with CODE ("nonzero" for any failure) and its combined
# output matches the extended REGEX. Prints the output either way.
set -u
want=$1 regex=$2
shift 2
[ "${1:-}" = "--" ] && shift
output=$("$@" 2>&1)
code=$?
printf '%s\n' "$output"
if [ "$want" = nonzero ]; then
  [ "$code" -ne 0 ] || { echo "FAIL: expected a non-zero exit, got 0"; exit 1; }
elif [ "$code" -ne "$want" ]; then
  echo "FAIL: expected exit $want, got $code"; exit 1
fi
printf '%s\n' "$output" | grep -Eq -- "$regex" || { echo "FAIL: output does not match /$regex/"; exit 1; }
echo "PASS: exit $code, output matches /$regex/"
