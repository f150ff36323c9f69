#include "runtime/evaluation.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>

namespace braid {

std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values) {
  comm.allreduce(Buffer{values.data(), static_cast<std::int64_t>(values.size()), DType::kFloat64},
                 ReduceOp::kSum, "rhd")
      .wait();
  return values;
}

Evaluation evaluate(Model& model, const Dataset& test, Communicator& comm, std::int64_t batch) {
  torch::NoGradGuard no_grad;
  model.eval();
  at::Tensor indices = eval_indices(test.size(), comm.rank(), comm.size());
  double loss_sum = 0, correct = 0, positions = 0;
  for (std::int64_t start = 0; start < indices.numel(); start += batch) {
    at::Tensor idx =
        indices.narrow(0, start, std::min(batch, indices.numel() - start)).to(test.inputs.device());
    const auto [x, y] = test.rows(idx);
    at::Tensor logits = model.forward(x);
    const auto n = static_cast<double>(model.positions(y));
    loss_sum += model.loss(logits, y).item<double>() * n;
    correct += static_cast<double>(model.correct(logits, y));
    positions += n;
  }
  model.train();
  auto totals = sum_over_ranks(comm, {loss_sum, correct, positions});
  return {totals[0] / totals[2], totals[1] / totals[2]};
}

}  // namespace braid
