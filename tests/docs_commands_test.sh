#!/usr/bin/env bash
# Runs every command shown in a code block of README.md and docs/*.md that can run on one
# machine, so the documentation cannot drift from what braid accepts.
# Usage: docs_commands_test.sh BRAID SOURCE_DIR
#
# A command is a line (with its `\` continuations, without its trailing `# comment`) of a
# ```sh, ```bash or unlabelled code block whose first word is one of: build/bin/braid, braid,
# mpirun, srun, scripts/..., launch/..., bench/..., python3. Other lines (YAML, sample output)
# are not commands. Each document's commands run in order (a later one may read what an
# earlier one wrote, e.g. a calibrated cost model) in a fresh directory of its own that has
# configs/, bench/, scripts/, launch/, build/bin/braid (also as `braid` on PATH) and an empty
# run.yaml (a valid config: every key at its default). Long runs are cut short:
#   train            + --set train.max_steps=3 (and no periodic evaluation, 200 test samples)
#   bench allreduce  the largest size becomes 64K; 2 iterations, 1 warm-up, no minimum time
# The test fails naming every command that failed; it also fails when an exclusion below no
# longer matches any command, so the list stays true.
set -uo pipefail
braid=$(realpath "$1") src=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export TERM=dumb

# Commands not run, as glob patterns, each with the reason.
excluded=(
  "scripts/quickstart.sh*|installs Debian packages, builds, and trains a whole epoch"
  "scripts/test.sh*|runs the whole test suite, this test included"
  "mpirun --hostfile hosts *|needs a hostfile naming other machines"
  "srun *|needs a Slurm allocation"
  "launch/braid-slowlink *|needs root and network namespaces (tests/slowlink_test.sh covers it)"
)

# Prints the commands of one markdown file, one per line.
commands_of() {
  awk '
    /^```/ {
      if (block) { block = 0; shell = 0 } else { block = 1; shell = ($0 ~ /^```(sh|bash)?[[:space:]]*$/) }
      next
    }
    !shell { next }
    { line = (pending != "" ? pending " " : "") $0; pending = "" }
    line ~ /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); pending = line; next }
    {
      sub(/[[:space:]]+#.*$/, "", line); gsub(/[[:space:]]+/, " ", line); sub(/^ /, "", line)
      if (line ~ /^(build\/bin\/braid|braid|mpirun|srun|python3|scripts\/|launch\/|bench\/)([ ]|$)/ ||
          line ~ /^(scripts|launch|bench)\//)
        print line
    }' "$1"
}

# Prints the command with the limits that keep it short.
limited() {
  local cmd=$1
  if [[ $cmd == *" train "* ]]; then
    cmd+=" --set train.max_steps=3 --set train.eval_every=0 --set data.test_limit=200"
  elif [[ $cmd == *" bench allreduce"* ]]; then
    if [[ $cmd =~ (^|\ )(-e|--max-bytes)\ [^\ ]+ ]]; then
      cmd=${cmd/"${BASH_REMATCH[0]}"/"${BASH_REMATCH[1]}${BASH_REMATCH[2]} 64K"}
    else
      cmd+=" -e 64K"
    fi
    [[ $cmd =~ \ (-n|--iters)\  ]] || cmd+=" --iters 2"
    [[ $cmd =~ \ (-w|--warmup)\  ]] || cmd+=" --warmup 1"
    [[ $cmd == *--min-time-ms* ]] || cmd+=" --min-time-ms 0"
  fi
  echo "$cmd"
}

# A fresh directory that looks like the source root, with the built braid.
workdir() {
  local dir=$1
  mkdir -p "$dir/build/bin"
  for d in configs bench scripts launch; do ln -s "$src/$d" "$dir/$d"; done
  ln -s "$braid" "$dir/build/bin/braid"
  : > "$dir/run.yaml"
}

ran=0 failed=() used=()
for doc in "$src/README.md" "$src"/docs/*.md; do
  name=${doc#"$src"/}
  dir="$work/$(echo "$name" | tr '/.' '__')"
  workdir "$dir"
  while IFS= read -r cmd; do
    reason=""
    for entry in "${excluded[@]}"; do
      # shellcheck disable=SC2053
      if [[ $cmd == ${entry%%|*} ]]; then reason=${entry#*|} used+=("${entry%%|*}"); break; fi
    done
    if [ -n "$reason" ]; then
      echo "skip  $name: $cmd   ($reason)"
      continue
    fi
    run=$(limited "$cmd")
    echo "run   $name: $run"
    log="$dir/log-$ran"
    if ! (cd "$dir" && PATH="$dir/build/bin:$PATH" timeout 120 bash -c "$run") > "$log" 2>&1 < /dev/null; then
      tail -20 "$log"
      failed+=("$name: $run")
    fi
    ran=$((ran + 1))
  done < <(commands_of "$doc")
done

for entry in "${excluded[@]}"; do
  pattern=${entry%%|*}
  printf '%s\n' "${used[@]}" | grep -qxF -- "$pattern" ||
    failed+=("the exclusion '$pattern' matches no command any more: remove it from $0")
done
[ "$ran" -ge 8 ] || failed+=("only $ran commands found: is the extraction broken?")

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAIL: %s\n' "${failed[@]}"
  exit 1
fi
echo "PASS: $ran commands from README.md and docs/ ran"
