// The embedding API under mpirun, against the same program without braid. What a step
// exchanges must be what .grad holds when the user steps, whatever the loop does in between:
// a GAN (two models, two optimizers, both orders of the phases, with and without freezing the
// discriminator), two backward passes per step, gradients zeroed or changed after a backward,
// gradient accumulation with no_sync(), the five-line port (DistributedOptimizer), uneven inputs
// (join) and a rank that spends long before destroying its DataParallel.
//
// The reference runs every rank's replica in this one process, without braid: each replica runs
// the pattern on its rank's data, and a step averages the replicas' .grad (undefined ones count
// as zeros; a parameter no replica has a gradient for keeps none) before each replica's own
// optimizer step. At np 1 that is the plain program, and braid must match it bitwise (an average
// over one rank is exact). At np 2 the average of two float64 values is exact too whatever the
// order, so the only room for a difference is the rounding of a reduction order in the optimizer
// (none): 1e-12 relative leaves a margin of four orders over float64's rounding, while the
// semantics this guards against (a discarded gradient reaching a step) move parameters by 1e-3;
// the negative control shows the tolerance sees that.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <thread>

#include "common/error.h"
#include "optimizers/replicas.h"
#include "runtime/data_parallel.h"
#include "runtime/distributed_optimizer.h"
#include "runtime/world.h"

namespace braid {
namespace {

World* world = nullptr;

struct Generator : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(4, 8))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(8, 6))};
  at::Tensor forward(const at::Tensor& z) { return fc2(torch::tanh(fc1(z))); }
};

struct Discriminator : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(6, 8))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(8, 1))};
  at::Tensor forward(const at::Tensor& x) { return fc2(torch::relu(fc1(x))); }
};

constexpr std::int64_t kBatch = 5;

// Deterministic data of a rank and step, different for every (rank, step, salt).
at::Tensor data(int rank, int step, std::int64_t width, double salt) {
  at::Tensor i = at::arange(kBatch * width, at::kDouble).view({kBatch, width});
  return at::sin(i * 0.37 + rank * 1.3 + step * 0.71 + salt);
}

at::Tensor bce(const at::Tensor& logits, double label) {
  return torch::binary_cross_entropy_with_logits(logits, at::full_like(logits, label));
}

// One replica: the two models and their optimizers, seeded alike on every rank.
struct Gan {
  std::shared_ptr<Generator> g;
  std::shared_ptr<Discriminator> d;
  std::unique_ptr<torch::optim::SGD> opt_g, opt_d;
  Gan() {
    torch::manual_seed(3);
    g = std::make_shared<Generator>();
    d = std::make_shared<Discriminator>();
    g->to(at::kDouble);
    d->to(at::kDouble);
    opt_g = std::make_unique<torch::optim::SGD>(g->parameters(),
                                                torch::optim::SGDOptions(0.05).momentum(0.9));
    opt_d = std::make_unique<torch::optim::SGD>(d->parameters(),
                                                torch::optim::SGDOptions(0.05).momentum(0.9));
  }
};

void freeze(torch::nn::Module& module, bool frozen) {
  for (at::Tensor& p : module.parameters()) p.requires_grad_(!frozen);
}

// A pattern is a program's step: phases (code on one replica, its rank, the step) and the steps
// of either model between them. A phase marked no_sync_d runs inside dp_d.no_sync() with braid.
struct Op {
  enum Kind { kPhase, kStepD, kStepG } kind = kPhase;
  std::function<void(Gan&, int rank, int step)> phase;
  bool no_sync_d = false;
};
using Pattern = std::vector<Op>;

Op phase(std::function<void(Gan&, int, int)> f, bool no_sync_d = false) {
  return {Op::kPhase, std::move(f), no_sync_d};
}
const Op kStepD{Op::kStepD, nullptr};
const Op kStepG{Op::kStepG, nullptr};

// The discriminator on real images and on the generator's (detached) fakes.
void d_phase(Gan& m, int rank, int step) {
  m.opt_d->zero_grad();
  bce(m.d->forward(data(rank, step, 6, 0)), 1).backward();
  at::Tensor fake = m.g->forward(data(rank, step, 4, 2)).detach();
  bce(m.d->forward(fake), 0).backward();  // a second backward pass into D before its step
}

// The generator through the discriminator: D's parameters get gradients the program discards
// (its next zero_grad) unless frozen.
void g_phase(Gan& m, int rank, int step, bool freeze_d) {
  m.opt_g->zero_grad();
  if (freeze_d) freeze(*m.d, true);
  bce(m.d->forward(m.g->forward(data(rank, step, 4, 2))), 1).backward();
  if (freeze_d) freeze(*m.d, false);
}

Pattern gan_d_first(bool freeze_d) {
  return {phase(d_phase), kStepD, phase([=](Gan& m, int r, int s) { g_phase(m, r, s, freeze_d); }),
          kStepG};
}

Pattern gan_g_first(bool freeze_d) {
  return {phase([=](Gan& m, int r, int s) { g_phase(m, r, s, freeze_d); }), kStepG, phase(d_phase),
          kStepD};
}

// D alone: two losses, each with its own backward pass, then one step.
Pattern two_backward_passes() {
  return {phase([](Gan& m, int r, int s) {
            m.opt_d->zero_grad();
            bce(m.d->forward(data(r, s, 6, 0)), 1).backward();
            bce(m.d->forward(data(r, s, 6, 5)), 0).backward();
          }),
          kStepD};
}

// A backward pass whose gradients the program zeroes, then another one.
Pattern zeroed_then_backward() {
  return {phase([](Gan& m, int r, int s) {
            m.opt_d->zero_grad();
            bce(m.d->forward(data(r, s, 6, 7)), 1).backward();
            m.opt_d->zero_grad();
            bce(m.d->forward(data(r, s, 6, 0)), 0).backward();
          }),
          kStepD};
}

// .grad changed after the last backward pass, before the step (no hook sees it).
Pattern changed_before_step() {
  return {phase([](Gan& m, int r, int s) {
            m.opt_d->zero_grad();
            bce(m.d->forward(data(r, s, 6, 0)), 1).backward();
            for (at::Tensor& p : m.d->parameters()) p.mutable_grad().mul_(0.5);
            m.d->fc1->bias.mutable_grad().zero_();
          }),
          kStepD};
}

// Gradient accumulation: the first micro-batch inside no_sync(), the second outside.
Pattern accumulation_with_no_sync() {
  return {
      phase(
          [](Gan& m, int r, int s) {
            m.opt_d->zero_grad();
            (bce(m.d->forward(data(r, s, 6, 0)), 1) / 2).backward();
          },
          /*no_sync_d=*/true),
      phase([](Gan& m, int r, int s) { (bce(m.d->forward(data(r, s, 6, 3)), 0) / 2).backward(); }),
      kStepD};
}

constexpr int kSteps = 3;

// Each replica's .grad averaged into all of them, as the semantics say a step sees it.
void average_gradients(std::vector<Gan>& replicas, bool of_d) {
  if (replicas.size() == 1) return;  // the plain program
  auto params = [&](Gan& m) { return of_d ? m.d->parameters() : m.g->parameters(); };
  const std::size_t n = params(replicas[0]).size();
  for (std::size_t k = 0; k < n; ++k) {
    at::Tensor sum;
    for (Gan& m : replicas) {
      const at::Tensor& grad = params(m)[k].grad();
      if (grad.defined()) sum = sum.defined() ? sum + grad : grad.clone();
    }
    if (!sum.defined()) continue;
    at::Tensor mean = sum / static_cast<double>(replicas.size());
    for (Gan& m : replicas) params(m)[k].mutable_grad() = mean.clone();
  }
}

std::vector<at::Tensor> parameters_of(Gan& m) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : m.d->parameters()) out.push_back(p.detach().clone());
  for (const at::Tensor& p : m.g->parameters()) out.push_back(p.detach().clone());
  return out;
}

// The program without braid, every rank's replica in this process.
std::vector<at::Tensor> reference(const Pattern& pattern, int ranks) {
  std::vector<Gan> replicas(ranks);
  for (int step = 0; step < kSteps; ++step) {
    for (const Op& op : pattern) {
      if (op.kind == Op::kPhase) {
        for (int r = 0; r < ranks; ++r) op.phase(replicas[r], r, step);
        continue;
      }
      const bool of_d = op.kind == Op::kStepD;
      average_gradients(replicas, of_d);
      for (Gan& m : replicas) (of_d ? m.opt_d : m.opt_g)->step();
    }
  }
  return parameters_of(replicas[0]);
}

DataParallelOptions options_named(const std::string& name) {
  DataParallelOptions options;
  options.name = name;
  options.bucket_mb = 0.0002;  // several buckets per model, so overlap has work to do
  options.timeout_s = 60;
  options.debug_checks = true;
  return options;
}

// The same program data-parallel with braid, on this rank's data.
std::vector<at::Tensor> with_braid(const Pattern& pattern, DataParallelOptions d_options = {}) {
  Gan m;
  if (d_options.name.empty()) d_options = options_named("discriminator");
  DataParallel dp_d(*world, *m.d, d_options);
  DataParallel dp_g(*world, *m.g, options_named("generator"));
  const int rank = world->rank();
  for (int step = 0; step < kSteps; ++step) {
    for (const Op& op : pattern) {
      if (op.kind == Op::kStepD) {
        dp_d.step(*m.opt_d);
      } else if (op.kind == Op::kStepG) {
        dp_g.step(*m.opt_g);
      } else if (op.no_sync_d) {
        auto scope = dp_d.no_sync();
        op.phase(m, rank, step);
      } else {
        op.phase(m, rank, step);
      }
    }
  }
  check_replicas_identical(dp_d.communicator(), m.d->parameters());
  check_replicas_identical(dp_g.communicator(), m.g->parameters());
  return parameters_of(m);
}

// Largest |a - b| / max(1, |b|) over all parameters.
double difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, ((a[i] - b[i]).abs() / b[i].abs().clamp_min(1)).max().item<double>());
  }
  return worst;
}

constexpr double kTolerance = 1e-12;

void expect_follows_reference(const Pattern& pattern, const char* what) {
  const auto expected = reference(pattern, world->size());
  const auto got = with_braid(pattern);
  if (world->size() == 1) {
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(at::equal(got[i], expected[i])) << what << ": parameter " << i;
    }
  } else {
    EXPECT_LT(difference(got, expected), kTolerance) << what;
  }
}

TEST(Semantics, GanDiscriminatorFirstAsTheDcganExample) {
  expect_follows_reference(gan_d_first(false), "D then G");
  expect_follows_reference(gan_d_first(true), "D then G, D frozen in G's phase");
}

TEST(Semantics, GanGeneratorFirst) {
  expect_follows_reference(gan_g_first(false), "G then D");
  expect_follows_reference(gan_g_first(true), "G then D, D frozen in G's phase");
}

TEST(Semantics, TwoBackwardPassesPerStep) {
  expect_follows_reference(two_backward_passes(), "two backward passes");
}

TEST(Semantics, GradientsZeroedAfterABackwardNeverReachTheStep) {
  expect_follows_reference(zeroed_then_backward(), "zeroed, then backward");
  expect_follows_reference(changed_before_step(), ".grad changed after backward");
}

TEST(Semantics, GradientAccumulationWithNoSync) {
  expect_follows_reference(accumulation_with_no_sync(), "no_sync accumulation");
}

// The failure the issue reported: D's gradients from G's phase added into D's next step. The
// reference that keeps them (no zero_grad at the start of D's phase) must fail the tolerance.
TEST(NegativeControl, KeepingTheDiscardedGradientsFailsTheTolerance) {
  Pattern leaky = gan_g_first(false);
  leaky[2] = phase([](Gan& m, int r, int s) {
    bce(m.d->forward(data(r, s, 6, 0)), 1).backward();  // no zero_grad: G's phase leaks in
    bce(m.d->forward(m.g->forward(data(r, s, 4, 2)).detach()), 0).backward();
  });
  const auto wrong = reference(leaky, world->size());
  EXPECT_GT(difference(with_braid(gan_g_first(false)), wrong), 1e6 * kTolerance);
}

// A compressed exchange cannot send a bucket twice in one step: the second backward pass is
// refused on every rank, naming the parameter, the DataParallel and the ways out; with
// overlap off every bucket goes once, at step(), and the same program runs.
TEST(Semantics, CompressedExchangeRefusesASecondBackwardPassWithOverlap) {
  DataParallelOptions options = options_named("critic");
  options.compression.compression.name = "topk";
  options.compression.compression.ratio = 1.0;
  try {
    with_braid(two_backward_passes(), options);
    ADD_FAILURE() << "a resent compressed bucket was not refused";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("parameter 'fc"), std::string::npos) << what;
    EXPECT_NE(what.find("DataParallel 'critic'"), std::string::npos) << what;
    EXPECT_NE(what.find("no_sync()"), std::string::npos) << what;
    EXPECT_NE(what.find("DataParallelOptions::overlap"), std::string::npos) << what;
  }
  options.overlap = false;
  const auto got = with_braid(two_backward_passes(), options);
  EXPECT_LT(difference(got, reference(two_backward_passes(), world->size())), 1e-9);
}

// centered_clip keeps each step's aggregate as the next step's center, so a dropped exchange
// would move it: the second backward pass is refused too; a stateless rule (median) resends.
TEST(Semantics, CenteredClipRefusesASecondBackwardPassWithOverlap) {
  DataParallelOptions options = options_named("critic");
  options.aggregator.name = "centered_clip";
  try {
    with_braid(two_backward_passes(), options);
    ADD_FAILURE() << "a resent centered_clip bucket was not refused";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("sync.aggregator centered_clip"), std::string::npos) << what;
    EXPECT_NE(what.find("DataParallel 'critic'"), std::string::npos) << what;
  }
  options.overlap = false;
  EXPECT_NO_THROW(with_braid(two_backward_passes(), options));
  options.aggregator.name = "median";
  options.overlap = true;
  EXPECT_NO_THROW(with_braid(two_backward_passes(), options));
}

// The five-line port: optimizer.step() unchanged, a module given whole.
TEST(Port, DistributedOptimizerStepsLikeDataParallelStep) {
  Gan m;
  DataParallel dp(*world, *m.d, options_named("d"));
  DistributedOptimizer<torch::optim::SGD> optimizer(dp, m.d->parameters(),
                                                    torch::optim::SGDOptions(0.05).momentum(0.9));
  for (int step = 0; step < kSteps; ++step) {
    optimizer.zero_grad();
    bce(m.d->forward(data(world->rank(), step, 6, 0)), 1).backward();
    optimizer.step();
  }
  const Pattern same = {phase([](Gan& g, int r, int s) {
                          g.opt_d->zero_grad();
                          bce(g.d->forward(data(r, s, 6, 0)), 1).backward();
                        }),
                        kStepD};
  std::vector<at::Tensor> got;
  for (const at::Tensor& p : m.d->parameters()) got.push_back(p.detach().clone());
  auto expected = reference(same, world->size());
  expected.resize(got.size());  // D's parameters come first
  EXPECT_LT(difference(got, expected), kTolerance);
  check_replicas_identical(dp.communicator(), m.d->parameters());
}

// Uneven inputs: rank r runs 2 + 2r steps inside a join scope. Ranks that ran out shadow the
// others' steps; replicas stay identical and follow the reference in which a finished rank's
// gradient counts as zeros in the average over the world size.
TEST(Join, RanksWithFewerBatchesShadowTheOthers) {
  const int P = world->size();
  auto steps_of = [](int rank) { return 2 + 2 * rank; };
  Gan m;
  DataParallel dp(*world, *m.d, options_named("uneven"));
  {
    auto join = dp.join(*m.opt_d);
    for (int step = 0; step < steps_of(world->rank()); ++step) {
      m.opt_d->zero_grad();
      bce(m.d->forward(data(world->rank(), step, 6, 0)), 1).backward();
      dp.step(*m.opt_d);
    }
  }
  check_replicas_identical(dp.communicator(), m.d->parameters());
  std::vector<Gan> replicas(P);
  for (int step = 0; step < steps_of(P - 1); ++step) {
    for (int r = 0; r < P; ++r) {
      replicas[r].opt_d->zero_grad();
      for (at::Tensor& p : replicas[r].d->parameters()) p.mutable_grad() = at::Tensor();
      if (step < steps_of(r)) bce(replicas[r].d->forward(data(r, step, 6, 0)), 1).backward();
    }
    if (P > 1) {
      for (std::size_t k = 0; k < replicas[0].d->parameters().size(); ++k) {
        at::Tensor sum = at::zeros_like(replicas[0].d->parameters()[k]);
        for (Gan& g : replicas) {
          const at::Tensor& grad = g.d->parameters()[k].grad();
          if (grad.defined()) sum = sum + grad;
        }
        for (Gan& g : replicas) g.d->parameters()[k].mutable_grad() = sum / P;
      }
    }
    for (Gan& g : replicas) g.opt_d->step();
  }
  std::vector<at::Tensor> got, expected;
  for (const at::Tensor& p : m.d->parameters()) got.push_back(p.detach().clone());
  for (const at::Tensor& p : replicas[0].d->parameters()) expected.push_back(p.detach().clone());
  EXPECT_LT(difference(got, expected), kTolerance);
}

// Option errors name the field a program sets, not only braid train's config key.
TEST(Port, OptionErrorsNameTheDataParallelOptionsField) {
  Gan m;
  DataParallelOptions options = options_named("d");
  options.compression.compression.name = "topk";
  options.compression.compression.ratio = 2;
  try {
    DataParallel dp(*world, *m.d, options);
    ADD_FAILURE() << "ratio 2 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("DataParallelOptions::compression.compression.ratio"),
              std::string::npos)
        << e.what();
  }
}

// Rank 0 alone spends a while (evaluating, saving) before its DataParallel is destroyed; the
// others destroy theirs at once. Every rank must leave: a hang here ends in the CTest timeout.
// The buckets live in the node's shared memory ("auto" on one node), whose teardown once hung.
TEST(Exit, RankZeroLateToDestroyDataParallelDoesNotHang) {
  Gan m;
  {
    DataParallelOptions options = options_named("late");
    options.timeout_s = 30;
    DataParallel dp(*world, *m.d, options);
    m.opt_d->zero_grad();
    bce(m.d->forward(data(world->rank(), 0, 6, 0)), 1).backward();
    dp.step(*m.opt_d);
    // Standing in for rank 0's evaluation: not a synchronisation, nothing waits on it.
    if (world->is_main()) std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  SUCCEED();
}

}  // namespace
}  // namespace braid

int main(int argc, const char** argv) {
  braid::World world(&argc, &argv);  // the main(int, const char**) form
  braid::world = &world;
  at::set_num_threads(1);
  ::testing::InitGoogleTest(&argc, const_cast<char**>(argv));
  return RUN_ALL_TESTS();
}
