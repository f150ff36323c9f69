#!/usr/bin/env bash
# model_export_torch_load.sh RUNTIME_TEST
# The contract of <run dir>/model.pt: Python's torch.load reads it (also with weights_only=True,
# the default from PyTorch 2.6) as a dict of exactly the module's parameter and buffer names with
# the values C++ wrote, and load_state_dict(strict=True) accepts it into a PyTorch module of the
# same structure. The file comes from ModelExport.SampleForPython in runtime_test.
# Exits 77 (skipped) when Debian's python3-torch is not installed (scripts/setup.sh installs it).
set -u
runtime_test=$1
python=/usr/bin/python3
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "SKIP: $python cannot import torch (apt-get install python3-torch)"
  exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/braid-model-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

sample=$tmp/model.pt
if ! BRAID_MODEL_EXPORT_SAMPLE=$sample "$runtime_test" --gtest_filter=ModelExport.SampleForPython; then
  echo "FAIL: runtime_test could not write the sample"
  exit 1
fi
"$python" - "$sample" <<'PY' || { echo "FAIL: torch.load does not read $sample as expected"; exit 1; }
import sys
import torch

path = sys.argv[1]
for weights_only in (False, True):
    weights = torch.load(path, weights_only=weights_only)
    assert isinstance(weights, dict), type(weights)
    expected = {"fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                "bn.num_batches_tracked", "blocks.0.weight", "blocks.0.bias"}
    assert set(weights) == expected, sorted(weights)
    for name, tensor in weights.items():
        if name == "bn.num_batches_tracked":
            assert tensor.dtype == torch.int64 and tensor.item() == 7, (name, tensor)
            continue
        assert tensor.dtype == torch.float32, (name, tensor.dtype)
        want = torch.arange(tensor.numel(), dtype=torch.float32).reshape(tensor.shape) * 0.125 - 1
        assert torch.equal(tensor, want), (name, tensor, want)


class Sample(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.bn = torch.nn.BatchNorm1d(2)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])


model = Sample()
model.load_state_dict(torch.load(path), strict=True)
assert torch.equal(model.fc.bias, torch.tensor([-1.0, -0.875]))
print("PASS: torch", torch.__version__, "loads", path)
PY
