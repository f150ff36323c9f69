// Checkpoints with threads as ranks: a save that fails on one rank leaves `latest` on the
// previous step and fails every rank; a corrupt, truncated or missing newest file makes every
// rank fall back to the newest step intact everywhere, with a warning naming the file; no
// intact step is an error; a changed config key is a ConfigError naming it; diverged replicas
// fail loudly; an int64 strategy counter round-trips exactly.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "optimizers/sync_strategy.h"
#include "runtime/checkpoint.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

namespace fs = std::filesystem;
using testing::spawn_ranks;

constexpr int kRanks = 3;

// A strategy whose whole state is one int64 counter, as a 0-dim tensor.
class CounterStrategy : public SyncStrategy {
 public:
  const char* name() const override { return "counter"; }
  void attach(const NamedTensors&) override {}
  void step(torch::optim::Optimizer&) override {}
  void set_gradient_sync(bool) override {}
  bool state_is_replicated() const override { return replicated; }
  SyncStats stats() const override { return {}; }
  NamedTensors state() const override {
    return {{"counter", at::scalar_tensor(counter, at::kLong)}};
  }
  void load_state(const NamedTensors& state) override {
    BRAID_CHECK(state.size() == 1 && state[0].second.scalar_type() == at::kLong,
                "counter state must come back as one int64 tensor");
    counter = state[0].second.item<std::int64_t>();
  }
  std::int64_t counter = 0;
  bool replicated = false;  // the counter differs per rank in most tests
};

// One rank's training objects, every parameter set to `value` so steps can be told apart.
struct Replica {
  torch::nn::Linear model{4, 3};
  torch::optim::SGD optimizer{model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9)};
  CounterStrategy strategy;
  explicit Replica(double value) { set(value); }
  void set(double value) {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.fill_(value);
  }
  double value() const { return model->weight[0][0].item<double>(); }
  void save(Checkpointer& checkpointer, Communicator& comm, std::int64_t step) {
    checkpointer.save(comm, {step, 0, step}, *model, optimizer, strategy);
  }
};

// A fresh checkpoint directory per test.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("braid-checkpoint-{}-{}-{}", info->name(), getpid(), counter_++);
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Checkpointer checkpointer(int rank, const Config& config = {}, int keep = 2) const {
    return Checkpointer(dir_.string(), rank, kRanks, resume_fingerprint(config), keep);
  }
  fs::path file(std::int64_t step, int rank) const {
    return dir_ / "checkpoints" / fmt::format("step-{:08d}", step) /
           fmt::format("rank-{:05d}.ckpt", rank);
  }
  std::string latest() const {
    std::ifstream in(dir_ / "checkpoints" / "latest");
    std::string name;
    in >> name;
    return name;
  }
  // Steps 1 and 2 on every rank, parameters 1.0 and 2.0.
  void save_two_steps() {
    spawn_ranks(kRanks, [&](Communicator& comm) {
      Replica replica(1.0);
      Checkpointer c = checkpointer(comm.rank());
      replica.save(c, comm, 1);
      replica.set(2.0);
      replica.save(c, comm, 2);
    });
    ASSERT_EQ(latest(), "step-00000002");
  }

  struct Outcome {
    std::int64_t step = -1;  // -1: nothing restored
    double value = 0;        // a parameter after loading
    std::string error;       // "<type>: <message>"
  };
  // Loads on every rank into fresh objects (parameters -1.0).
  std::vector<Outcome> load_all(const Config& config = {}) {
    std::vector<Outcome> outcomes(kRanks);
    spawn_ranks(kRanks, [&](Communicator& comm) {
      Replica replica(-1.0);
      Outcome& o = outcomes[comm.rank()];
      try {
        auto position = checkpointer(comm.rank(), config)
                            .load_latest(comm, *replica.model, replica.optimizer, replica.strategy);
        if (position) o.step = position->step;
      } catch (const ConfigError& e) {
        o.error = std::string("ConfigError: ") + e.what();
      } catch (const CheckpointError& e) {
        o.error = std::string("CheckpointError: ") + e.what();
      } catch (const CommError& e) {
        o.error = std::string("CommError: ") + e.what();
      }
      o.value = replica.value();
    });
    return outcomes;
  }

  fs::path dir_;
  static inline int counter_ = 0;
};

// Collects what is logged while it lives.
class CapturedLog {
 public:
  CapturedLog() { spdlog::default_logger()->sinks().push_back(sink_); }
  ~CapturedLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::find(sinks.begin(), sinks.end(), sink_));
  }
  std::string text() const {
    std::string all;
    for (const auto& line : sink_->last_formatted()) all += line;
    return all;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
};

void flip_middle_byte(const fs::path& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto middle = static_cast<std::streamoff>(fs::file_size(path) / 2);
  f.seekg(middle);
  char byte = 0;
  f.get(byte);
  f.seekp(middle);
  f.put(static_cast<char>(~byte));
}

// Everything metrics.jsonl continues after a resume comes back as it was saved.
TEST_F(CheckpointTest, PositionAndCountersRoundTrip) {
  TrainPosition saved;
  saved.step = 7;
  saved.epoch = 2;
  saved.step_in_epoch = 3;
  saved.epoch_offset = 64;
  saved.time_s = 12.5;
  saved.bytes_sent = 1000;
  saved.bytes_recv = 2000;
  saved.bytes_dense = 4000;
  saved.skipped_steps = 3;
  std::vector<TrainPosition> restored(kRanks);
  spawn_ranks(kRanks, [&](Communicator& comm) {
    Replica replica(1.0);
    checkpointer(comm.rank())
        .save(comm, saved, *replica.model, replica.optimizer, replica.strategy);
    restored[comm.rank()] =
        *checkpointer(comm.rank())
             .load_latest(comm, *replica.model, replica.optimizer, replica.strategy);
  });
  for (const TrainPosition& got : restored) {
    EXPECT_EQ(got.step, 7);
    EXPECT_EQ(got.epoch, 2);
    EXPECT_EQ(got.step_in_epoch, 3);
    EXPECT_EQ(got.epoch_offset, 64);
    EXPECT_EQ(got.time_s, 12.5);
    EXPECT_EQ(got.bytes_sent, 1000u);
    EXPECT_EQ(got.bytes_recv, 2000u);
    EXPECT_EQ(got.bytes_dense, 4000u);
    EXPECT_EQ(got.skipped_steps, 3);
    EXPECT_EQ(got.world, kRanks);
  }
}

// train.init_from reads rank 0's weights of the step `latest` names, from any of the paths.
TEST_F(CheckpointTest, WeightsOfTheLatestStepFromAnyPathOfTheRun) {
  save_two_steps();
  const fs::path step1 = dir_ / "checkpoints" / "step-00000001";
  for (const fs::path& path :
       {dir_, dir_ / "checkpoints", dir_ / "checkpoints" / "step-00000002", file(2, 0)}) {
    ASSERT_TRUE(is_checkpoint(path.string())) << path;
    const auto weights = checkpoint_weights(path.string());
    ASSERT_EQ(weights.size(), 2u) << path;
    for (const auto& [name, tensor] : weights) {
      EXPECT_TRUE(name == "weight" || name == "bias") << name;
      EXPECT_TRUE(torch::all(tensor == 2.0).item<bool>()) << path << " " << name;
    }
  }
  EXPECT_TRUE(torch::all(checkpoint_weights(step1.string())[0].second == 1.0).item<bool>());
  EXPECT_FALSE(is_checkpoint(fs::temp_directory_path().string()));
  std::ofstream(dir_ / "other.pt") << "PK not a checkpoint";
  EXPECT_FALSE(is_checkpoint((dir_ / "other.pt").string()));
  std::ofstream(file(2, 0), std::ios::trunc) << "BRAIDCKP truncated";
  try {
    checkpoint_weights(dir_.string());
    FAIL() << "a truncated file was read";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(file(2, 0).string()), std::string::npos) << e.what();
  }
}

// Interrupted during its first save (Ctrl-C while the files were written): temporary files and
// no `latest`. Nothing was ever committed, so the run starts over, saying so, on every rank.
TEST_F(CheckpointTest, RemainsOfAnInterruptedFirstSaveStartOver) {
  const fs::path step = dir_ / "checkpoints" / "step-00000005";
  fs::create_directories(step);
  std::ofstream(step / "rank-00000.ckpt.tmp") << "half a checkpoint";
  std::ofstream(step / "rank-00001.ckpt") << "one rank's file, renamed before the interrupt";
  CapturedLog log;
  for (const Outcome& o : load_all()) {
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.step, -1);  // nothing restored: step 0
  }
  EXPECT_NE(log.text().find("step-00000005; no `latest`): starting from step 0"), std::string::npos)
      << log.text();
}

// A complete step directory whose `latest` is gone is not thrown away: refused, with the fix.
TEST_F(CheckpointTest, CompleteStepWithoutPointerIsRefusedNamingTheWayOut) {
  save_two_steps();
  fs::remove(dir_ / "checkpoints" / "latest");
  for (const Outcome& o : load_all()) {
    EXPECT_NE(o.error.find("no readable 'latest' pointer"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("write its name into"), std::string::npos) << o.error;
    EXPECT_EQ(o.value, -1.0);  // untouched
  }
}

TEST_F(CheckpointTest, BadNewestFileOnOneRankFallsBackOnEveryRankWithAWarning) {
  struct Damage {
    const char* name;
    std::function<void(const fs::path&)> apply;
    const char* cause;
  };
  const std::vector<Damage> damages = {
      {"corrupt", flip_middle_byte, "corrupt: CRC-32 mismatch"},
      {"truncated", [](const fs::path& p) { fs::resize_file(p, fs::file_size(p) - 7); },
       "truncated or padded"},
      {"missing", [](const fs::path& p) { fs::remove(p); }, "cannot open it"},
  };
  for (const Damage& damage : damages) {
    SCOPED_TRACE(damage.name);
    TearDown();
    save_two_steps();
    const fs::path bad = file(2, 1);
    damage.apply(bad);
    CapturedLog log;
    for (const Outcome& o : load_all()) {
      EXPECT_EQ(o.error, "");
      EXPECT_EQ(o.step, 1);
      EXPECT_EQ(o.value, 1.0);
    }
    EXPECT_NE(log.text().find(bad.string() + " is unreadable: " + damage.cause), std::string::npos)
        << log.text();
  }
}

TEST_F(CheckpointTest, NoStepIntactOnEveryRankIsAnErrorOnEveryRank) {
  save_two_steps();
  flip_middle_byte(file(1, 0));
  flip_middle_byte(file(2, 2));
  for (const Outcome& o : load_all()) {
    EXPECT_EQ(o.error.rfind("CheckpointError: no checkpoint in ", 0), 0u) << o.error;
    EXPECT_NE(o.error.find("step-00000002/rank-00002.ckpt"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("step-00000001/rank-00000.ckpt"), std::string::npos) << o.error;
    EXPECT_EQ(o.value, -1.0);  // nothing restored
  }
}

TEST_F(CheckpointTest, ChangedBatchSizeIsAConfigErrorNamingTheKeyBeforeAnythingChanges) {
  save_two_steps();
  Config changed;
  changed.data.batch_size = 32;
  for (const Outcome& o : load_all(changed)) {
    EXPECT_EQ(o.error.rfind("ConfigError: resume: data.batch_size was 64 in checkpoint " +
                                file(2, 0).parent_path().string(),
                            0),
              0u)
        << o.error;
    EXPECT_NE(o.error.find("the config says 32; use a new run.dir"), std::string::npos) << o.error;
    EXPECT_EQ(o.value, -1.0);
  }
}

TEST_F(CheckpointTest, ScheduleLengthMattersOnlyForADecayingSchedule) {
  Config before, after;
  after.train.max_steps = 100;
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(before), resume_fingerprint(after), "f"), "");
  before.optimizer.schedule = after.optimizer.schedule = "warmup_cosine";
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(before), resume_fingerprint(after), "f"),
            "train.max_steps was 0 in checkpoint f, the config says 100");
}

// outer.* keys count only for the strategies that use them, so allreduce checkpoints still match.
TEST_F(CheckpointTest, OuterKeysMatterOnlyForTheStrategiesThatUseThem) {
  Config before, after;
  after.outer.steps = 5;
  after.outer.lr = 0.3;
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(before), resume_fingerprint(after), "f"), "");
  before.sync.strategy = after.sync.strategy = "local_sgd";
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(before), resume_fingerprint(after), "f"),
            "outer.steps was 20 in checkpoint f, the config says 5");
  before.sync.strategy = after.sync.strategy = "diloco";
  before.outer.steps = 5;
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(before), resume_fingerprint(after), "f"),
            "outer.lr was 0.7 in checkpoint f, the config says 0.3");
  EXPECT_EQ(fingerprint_changes(resume_fingerprint(Config{}), resume_fingerprint(after), "f"),
            "sync.strategy was not recorded in checkpoint f, the config says \"diloco\"; "
            "outer.steps was not recorded in checkpoint f, the config says 5; "
            "outer.optimizer was not recorded in checkpoint f, the config says \"nesterov\"; "
            "outer.lr was not recorded in checkpoint f, the config says 0.3; "
            "outer.momentum was not recorded in checkpoint f, the config says 0.9");
}

TEST_F(CheckpointTest, FailedWriteOnOneRankFailsEveryRankAndLatestKeepsThePreviousStep) {
  std::vector<std::string> errors(kRanks);
  spawn_ranks(kRanks, [&](Communicator& comm) {
    Replica replica(1.0);
    Checkpointer c = checkpointer(comm.rank(), {}, /*keep=*/1);
    replica.save(c, comm, 1);
    if (comm.rank() == 1) {
      // A non-empty directory where rank 1's file goes: its rename fails, even as root.
      fs::create_directories(file(2, 1) / "occupied");
    }
    comm.barrier().wait();
    replica.set(2.0);
    try {
      replica.save(c, comm, 2);
    } catch (const CheckpointError& e) {
      errors[comm.rank()] = e.what();
    }
  });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("checkpoint step-00000002 was not written"), std::string::npos) << e;
    EXPECT_NE(e.find("on rank(s) 1"), std::string::npos) << e;
  }
  EXPECT_EQ(latest(), "step-00000001");
  for (int r = 0; r < kRanks; ++r) EXPECT_TRUE(fs::exists(file(1, r))) << "pruned too early";
  for (const Outcome& o : load_all()) {
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.step, 1);
    EXPECT_EQ(o.value, 1.0);
  }
}

TEST_F(CheckpointTest, Int64StrategyCounterRoundTripsExactly) {
  // 2^53 + 1 + rank: not representable as a double, so a float round trip would show.
  const std::int64_t base = (std::int64_t{1} << 53) + 1;
  std::vector<std::int64_t> restored(kRanks, 0);
  spawn_ranks(kRanks, [&](Communicator& comm) {
    Replica writer(1.0);
    writer.strategy.counter = base + comm.rank();
    Checkpointer c = checkpointer(comm.rank());
    writer.save(c, comm, 7);
    Replica reader(-1.0);
    c.load_latest(comm, *reader.model, reader.optimizer, reader.strategy);
    restored[comm.rank()] = reader.strategy.counter;
  });
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(restored[r], base + r);
}

TEST_F(CheckpointTest, RanksThatRestoreDifferentReplicasFailLoudly) {
  spawn_ranks(kRanks, [&](Communicator& comm) {
    Replica replica(1.0 + comm.rank());  // every file is intact, but the replicas differ
    Checkpointer c = checkpointer(comm.rank());
    replica.save(c, comm, 1);
  });
  for (const Outcome& o : load_all()) {
    EXPECT_EQ(o.error.rfind("CommError: replicas diverged", 0), 0u) << o.error;
  }
}

TEST_F(CheckpointTest, OlderFormatVersionIsRefusedClearly) {
  save_two_steps();
  for (std::int64_t step : {1, 2}) {
    for (int r = 0; r < kRanks; ++r) {
      std::fstream f(file(step, r), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(8);  // after the magic: the version, little-endian
      f.put(1);
    }
  }
  for (const Outcome& o : load_all()) {
    EXPECT_NE(o.error.find("format version 1; this braid reads version 2"), std::string::npos)
        << o.error;
  }
}

TEST_F(CheckpointTest, NoCheckpointRestoresNothing) {
  for (const Outcome& o : load_all()) {
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.step, -1);
    EXPECT_EQ(o.value, -1.0);
  }
}

// Resuming at another rank count: a strategy with replicated state continues from any rank's
// file (here 3 ranks' checkpoint on 2 ranks); one with per-rank state is refused with a
// ConfigError on every rank before anything is restored.
TEST_F(CheckpointTest, AnotherRankCountResumesReplicatedStateAndRefusesPerRankState) {
  save_two_steps();
  for (bool replicated : {false, true}) {
    std::vector<Outcome> outcomes(2);
    std::vector<int> written_by(2, 0);
    spawn_ranks(2, [&](Communicator& comm) {
      Replica replica(-1.0);
      replica.strategy.replicated = replicated;
      Outcome& o = outcomes[comm.rank()];
      try {
        Checkpointer c(dir_.string(), comm.rank(), 2, resume_fingerprint(Config{}));
        if (auto position =
                c.load_latest(comm, *replica.model, replica.optimizer, replica.strategy)) {
          o.step = position->step;
          written_by[comm.rank()] = position->world;
        }
      } catch (const ConfigError& e) {
        o.error = e.what();
      }
      o.value = replica.value();
    });
    for (int r = 0; r < 2; ++r) {
      if (replicated) {
        EXPECT_EQ(outcomes[r].step, 2) << outcomes[r].error;
        EXPECT_EQ(outcomes[r].value, 2.0);
        EXPECT_EQ(written_by[r], kRanks);
      } else {
        EXPECT_NE(outcomes[r].error.find("written by 3 ranks"), std::string::npos)
            << outcomes[r].error;
        EXPECT_NE(outcomes[r].error.find("the state of sync.strategy"), std::string::npos);
        EXPECT_NE(outcomes[r].error.find("per-rank state"), std::string::npos);
        EXPECT_EQ(outcomes[r].value, -1.0) << "restored although refused";
      }
    }
  }
}

}  // namespace
}  // namespace braid
