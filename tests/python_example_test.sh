#!/usr/bin/env bash
# python_example_test.sh BRAID MPIRUN... : examples/python end to end, as its README says:
# token files from the fortunes corpus, a GPT defined and scripted in Python, braid training it
# from examples/python/gpt.yaml on 2 ranks (a few steps), and braid's model.pt loading back into
# the Python GPT with load_state_dict(strict=True). Exits 77 (skipped) without python3-torch.
set -euo pipefail
braid=$1
shift
python=/usr/bin/python3
if ! "$python" -c "import torch, numpy" 2>/dev/null; then
  echo "SKIP: $python cannot import torch (apt-get install python3-torch)"
  exit 77
fi
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" "$here/examples/python/prepare.py" /usr/share/games/fortunes "$tmp/data"
"$python" "$here/examples/python/gpt.py" "$tmp/gpt.pt" --layers 1 --d-model 32 --context 32
"$@" 2 "$braid" train "$here/examples/python/gpt.yaml" --run-dir "$tmp/run" \
  --set model.path="$tmp/gpt.pt" --set data.path="$tmp/data" --set data.context=32 \
  --set train.max_steps=10 --set train.log_every=5 --set train.eval_every=0 \
  --set data.test_limit=64
PYTHONPATH="$here/examples/python" "$python" - "$tmp/run/model.pt" <<'PY'
import sys
import torch
from gpt import GPT
model = GPT(layers=1, d_model=32, heads=4, context=32)
model.load_state_dict(torch.load(sys.argv[1]), strict=True)
print("model.pt loads into the Python GPT:", sum(p.numel() for p in model.parameters()), "parameters")
PY
