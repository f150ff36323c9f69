// Config parsing: defaults, every key, overrides, the to_yaml round trip, and one case per kind
// of bad input (each message must start with the source and name the dotted key).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/config_options.h"
#include "runtime/data_parallel.h"
#include "runtime/strategy_factory.h"

namespace braid {
namespace {

const char* kFullYaml = R"(
run:
  dir: runs/full
  seed: 7
model:
  name: char_transformer
  hidden: 32
  d_model: 96
  layers: 3
  heads: 6
  context: 128
data:
  name: text
  path: /tmp/corpus.txt
  batch_size: 16
  train_limit: 1000
  test_limit: 200
  test_fraction: 0.1
optimizer:
  name: adamw
  lr: 3.0e-4
  momentum: 0.5
  weight_decay: 0.01
  schedule: warmup_cosine
  warmup_steps: 100
  min_lr_ratio: 0.1
sync:
  strategy: allreduce
  algorithm: rhd
  bucket_mb: 25
  overlap: false
  cost_model: /tmp/cost.yaml
outer:
  steps: 50
  optimizer: sgd
  lr: 0.5
  momentum: 0.8
train:
  epochs: 3
  max_steps: 500
  eval_every: 50
  log_every: 10
  checkpoint_every: 100
  resume: auto
  eval_batch_size: 256
runtime:
  threads: 2
  timeout_s: 60.5
  debug_checks: true
  log_level: debug
)";

// The combination checks are one function: a config is refused by it when parsed (`config
// check`, `train`), and DataParallelOptions by it when the strategy is made (the embedding API).
TEST(StrategyOptions, OneCheckForConfigsAndDataParallelOptions) {
  const std::string yaml =
      "compression:\n  name: topk\n  error_feedback: ef21\n  exchange: two_phase\n";
  try {
    parse_config(yaml, {}, "x.yaml");
    ADD_FAILURE() << "ef21 with two_phase was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x.yaml: compression.exchange: must be gather or auto"),
              std::string::npos)
        << e.what();
  }
  DataParallelOptions o = data_parallel_options(
      parse_config("compression:\n  name: topk\n  error_feedback: ef21\n", {}, "x.yaml"));
  EXPECT_NO_THROW(check_strategy_options(o));
  o.compression.compression.exchange = "two_phase";
  EXPECT_THROW(check_strategy_options(o), ConfigError);
  o.compression.compression.exchange = "gather";
  o.strategy = "diloco";
  o.compression.compression.name = "dgc";
  o.compression.error_feedback = "none";
  EXPECT_THROW(check_strategy_options(o), ConfigError);  // dgc needs allreduce
  EXPECT_THROW(
      parse_config("optimizer:\n  name: onebit_adam\nsync:\n  strategy: diloco\n", {}, "x.yaml"),
      ConfigError);
}

TEST(StrategyOptions, CombinationsKnownToDivergeAreWarnedAbout) {
  DataParallelOptions o;
  o.compression.compression.name = "randomk";
  o.compression.error_feedback = "ef21";
  ASSERT_EQ(strategy_option_warnings(o).size(), 1u);
  EXPECT_NE(strategy_option_warnings(o)[0].find("known to diverge"), std::string::npos);
  for (const char* feedback : {"ef", "econtrol"}) {
    o.compression.error_feedback = feedback;
    EXPECT_EQ(strategy_option_warnings(o).size(), 1u) << feedback;
  }
  o.compression.compression.name = "sign";
  for (const char* feedback : {"ef21", "econtrol"}) {
    o.compression.error_feedback = feedback;
    EXPECT_EQ(strategy_option_warnings(o).size(), 1u) << feedback;
  }
  o.compression.error_feedback = "ef";  // control: sign with ef trains
  EXPECT_TRUE(strategy_option_warnings(o).empty());
  o.compression.compression.name = "randomk";
  o.compression.error_feedback = "none";  // control: randomk without error feedback trains
  EXPECT_TRUE(strategy_option_warnings(o).empty());
  o.compression.error_feedback = "ef21";
  o.compression.compression.name = "topk";  // control: topk with ef21 trains
  EXPECT_TRUE(strategy_option_warnings(o).empty());
  o.strategy = "diloco";
  o.compression.error_feedback = "ef";
  EXPECT_EQ(strategy_option_warnings(o).size(), 1u);
}

TEST(Config, EmptyTextGivesDefaults) {
  Config c = parse_config("", {}, "empty.yaml");
  Config d;
  EXPECT_EQ(c.run.dir, d.run.dir);
  EXPECT_EQ(c.run.seed, 42u);
  EXPECT_EQ(c.model.name, "mlp");
  EXPECT_EQ(c.model.hidden, 256);
  EXPECT_EQ(c.data.name, "fashion_mnist");
  EXPECT_EQ(c.data.path, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(c.data.batch_size, 64);
  EXPECT_EQ(c.optimizer.name, "sgd");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.05);
  EXPECT_EQ(c.sync.strategy, "allreduce");
  EXPECT_EQ(c.sync.algorithm, "auto");
  EXPECT_TRUE(c.sync.overlap);
  EXPECT_EQ(c.train.epochs, 1);
  EXPECT_EQ(c.train.resume, "never");
  EXPECT_EQ(c.train.nonfinite, "error");
  EXPECT_EQ(parse_config("", {"train.nonfinite=skip"}, "x").train.nonfinite, "skip");
  EXPECT_EQ(c.runtime.log_level, "info");
  // Comments only, or an empty section, also mean all defaults.
  EXPECT_EQ(parse_config("# nothing\n", {}, "x").hash(), c.hash());
  EXPECT_EQ(parse_config("model:\n", {}, "x").hash(), c.hash());
}

TEST(Config, MissingKeysKeepDefaults) {
  Config c = parse_config("optimizer:\n  lr: 0.1\n", {}, "x.yaml");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_EQ(c.optimizer.name, "sgd");
}

TEST(Config, EverySectionParsed) {
  Config c = parse_config(kFullYaml, {}, "full.yaml");
  EXPECT_EQ(c.run.dir, "runs/full");
  EXPECT_EQ(c.run.seed, 7u);
  EXPECT_EQ(c.model.name, "char_transformer");
  EXPECT_EQ(c.model.hidden, 32);
  EXPECT_EQ(c.model.d_model, 96);
  EXPECT_EQ(c.model.layers, 3);
  EXPECT_EQ(c.model.heads, 6);
  EXPECT_EQ(c.model.context, 128);
  EXPECT_EQ(c.data.name, "text");
  EXPECT_EQ(c.data.path, "/tmp/corpus.txt");
  EXPECT_EQ(c.data.batch_size, 16);
  EXPECT_EQ(c.data.train_limit, 1000);
  EXPECT_EQ(c.data.test_limit, 200);
  EXPECT_DOUBLE_EQ(c.data.test_fraction, 0.1);
  EXPECT_EQ(c.optimizer.name, "adamw");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3.0e-4);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.01);
  EXPECT_EQ(c.optimizer.schedule, "warmup_cosine");
  EXPECT_EQ(c.optimizer.warmup_steps, 100);
  EXPECT_DOUBLE_EQ(c.optimizer.min_lr_ratio, 0.1);
  EXPECT_EQ(c.sync.strategy, "allreduce");
  EXPECT_EQ(c.sync.algorithm, "rhd");
  EXPECT_DOUBLE_EQ(c.sync.bucket_mb, 25.0);
  EXPECT_FALSE(c.sync.overlap);
  EXPECT_EQ(c.sync.cost_model, "/tmp/cost.yaml");
  EXPECT_EQ(c.outer.steps, 50);
  EXPECT_EQ(c.outer.optimizer, "sgd");
  EXPECT_DOUBLE_EQ(c.outer.lr, 0.5);
  EXPECT_DOUBLE_EQ(c.outer.momentum, 0.8);
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.max_steps, 500);
  EXPECT_EQ(c.train.eval_every, 50);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_EQ(c.train.checkpoint_every, 100);
  EXPECT_EQ(c.train.resume, "auto");
  EXPECT_EQ(c.train.eval_batch_size, 256);
  EXPECT_EQ(c.runtime.threads, 2);
  EXPECT_DOUBLE_EQ(c.runtime.timeout_s, 60.5);
  EXPECT_TRUE(c.runtime.debug_checks);
  EXPECT_EQ(c.runtime.log_level, "debug");
}

TEST(Config, TextDataDefaultsToFortunes) {
  Config c = parse_config("model: {name: char_transformer}\ndata: {name: text}\n", {}, "x");
  EXPECT_EQ(c.data.path, "/usr/share/games/fortunes");
}

// co2's outer step defaults to its reference code's (SGD, lr 1, momentum 0.2), not DiLoCo's;
// a value given in the file or on the command line is kept, and other strategies keep DiLoCo's.
TEST(Config, Co2HasItsOwnOuterDefaults) {
  Config co2 = parse_config("sync:\n  strategy: co2\n", {}, "x");
  EXPECT_EQ(co2.outer.optimizer, "sgd");
  EXPECT_EQ(co2.outer.lr, 1.0);
  EXPECT_EQ(co2.outer.momentum, 0.2);
  Config given = parse_config("sync:\n  strategy: co2\nouter:\n  momentum: 0.5\n",
                              {"outer.optimizer=nesterov"}, "x");
  EXPECT_EQ(given.outer.optimizer, "nesterov");
  EXPECT_EQ(given.outer.lr, 1.0);
  EXPECT_EQ(given.outer.momentum, 0.5);
  Config diloco = parse_config("", {"sync.strategy=diloco"}, "x");
  EXPECT_EQ(diloco.outer.optimizer, "nesterov");
  EXPECT_EQ(diloco.outer.lr, 0.7);
  EXPECT_EQ(diloco.outer.momentum, 0.9);
  // The resolved values survive a round trip through to_yaml.
  EXPECT_EQ(parse_config(co2.to_yaml(), {}, "x").hash(), co2.hash());
}

// Streaming DiLoCo's paper tunes its outer Nesterov lr to 0.4 (DiLoCo's paper: 0.7).
TEST(Config, StreamingDilocoDefaultsToItsPapersOuterLr) {
  EXPECT_EQ(parse_config("", {"sync.strategy=streaming_diloco"}, "x").outer.lr, 0.4);
  EXPECT_EQ(parse_config("", {"sync.strategy=streaming_diloco", "outer.lr=0.7"}, "x").outer.lr,
            0.7);
  EXPECT_EQ(parse_config("", {"sync.strategy=diloco"}, "x").outer.lr, 0.7);  // control
}

TEST(Config, OverridesApplyAfterTheFileInOrder) {
  Config c = parse_config("optimizer:\n  lr: 0.1\n",
                          {"optimizer.lr=0.2", "optimizer.lr=0.3", "sync.overlap=false",
                           "run.dir=runs/x y", "run.seed=9", "model.name=cnn"},
                          "x.yaml");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.3);
  EXPECT_FALSE(c.sync.overlap);
  EXPECT_EQ(c.run.dir, "runs/x y");
  EXPECT_EQ(c.run.seed, 9u);
  EXPECT_EQ(c.model.name, "cnn");
  // An empty value unsets a free-text key, so the default path is resolved again.
  Config d = parse_config("data:\n  path: /elsewhere\n", {"data.path="}, "x.yaml");
  EXPECT_EQ(d.data.path, "/usr/share/datasets/fashion-mnist");
  // An override may fix a combination the file alone gets wrong.
  Config e = parse_config("model:\n  name: char_transformer\n", {"data.name=text"}, "x.yaml");
  EXPECT_EQ(e.data.name, "text");
}

void expect_round_trip(const Config& c) {
  const std::string yaml = c.to_yaml();
  Config back = parse_config(yaml, {}, "to_yaml");
  EXPECT_EQ(back.to_yaml(), yaml);
  EXPECT_EQ(back.hash(), c.hash());
}

TEST(Config, ToYamlRoundTrips) {
  expect_round_trip(parse_config("", {}, "x"));
  expect_round_trip(parse_config(kFullYaml, {}, "x"));
  // Strings YAML would otherwise read as other types or mangle, and doubles with no short form.
  Config c = parse_config(
      "run:\n  dir: \"yes\"\n  seed: 18446744073709551615\n"
      "optimizer:\n  lr: 0.1\n  momentum: 0.3333333333333333\n  weight_decay: 1e-300\n"
      "sync:\n  cost_model: \"a \\\"q\\\" \\\\ b\\n\\tc: #d é\"\n  bucket_mb: 123456789.125\n",
      {}, "x");
  EXPECT_EQ(c.run.dir, "yes");
  EXPECT_EQ(c.run.seed, 18446744073709551615ull);
  EXPECT_EQ(c.sync.cost_model, "a \"q\" \\ b\n\tc: #d é");
  expect_round_trip(c);
  Config back = parse_config(c.to_yaml(), {}, "x");
  EXPECT_EQ(back.optimizer.momentum, c.optimizer.momentum);  // exact, not near
  EXPECT_EQ(back.optimizer.weight_decay, 1e-300);
  Config links = parse_config("", {"inject.slow_links=[[1, 2], [0, 3]]"}, "x");
  ASSERT_EQ(links.inject.slow_links.size(), 2u);
  EXPECT_EQ(links.inject.slow_links[1][1], 3);
  expect_round_trip(links);
  for (const char* n : {"true", "123", "null", "~"}) {
    Config s = parse_config(std::string("run:\n  dir: \"") + n + "\"\n", {}, "x");
    EXPECT_EQ(s.run.dir, n);
    expect_round_trip(s);
  }
}

TEST(Config, ToYamlPrintsEveryKeyAndHashFollowsValues) {
  const std::string yaml = parse_config("", {}, "x").to_yaml();
  for (const char* section : {"run:\n", "model:\n", "data:\n", "optimizer:\n", "sync:\n",
                              "compression:\n", "outer:\n", "train:\n", "runtime:\n"}) {
    EXPECT_NE(yaml.find(section), std::string::npos) << section;
  }
  EXPECT_EQ(std::count(yaml.begin(), yaml.end(), '\n'), 11 + 111);  // 11 sections, 111 keys
  EXPECT_NE(yaml.find("  lr: 0.05\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  bucket_mb: 4.0\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  cost_model: \"\"\n"), std::string::npos) << yaml;
  EXPECT_NE(parse_config("", {"run.seed=43"}, "x").hash(), parse_config("", {}, "x").hash());
  EXPECT_NE(parse_config("", {"runtime.trace=true"}, "x").hash(), parse_config("", {}, "x").hash());
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::vector<std::string> overrides;
  std::vector<std::string> expected;  // substrings of the message
};

class BadConfig : public testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, ThrowsConfigErrorNamingTheKey) {
  const BadCase& c = GetParam();
  try {
    parse_config(c.yaml, c.overrides, "bad.yaml");
    FAIL() << "no ConfigError for " << c.name;
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("bad.yaml", 0), 0u) << message;
    for (const std::string& part : c.expected) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

const BadCase kBadCases[] = {
    {"UnknownKey",
     "optimizer:\n  lrr: 0.1\n",
     {},
     {"bad.yaml:2:3: ", "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"}},
    {"UnknownSection",
     "optimiser:\n  lr: 0.1\n",
     {},
     {"unknown key 'optimiser' (did you mean 'optimizer'?)"}},
    {"KeyInWrongSection",
     "model:\n  batch_size: 8\n",
     {},
     {"unknown key 'model.batch_size' (did you mean 'data.batch_size'?)"}},
    {"KeyAtTopLevel", "epochs: 3\n", {}, {"unknown key 'epochs' (did you mean 'train.epochs'?)"}},
    {"SwappedLettersSuggest", "modle:\n  name: cnn\n", {}, {"(did you mean 'model'?)"}},
    // A far name gets the section's keys, not a misleading guess ('colour' is 5 edits from
    // 'threads').
    {"FarKeyListsTheSectionsKeys",
     "runtime:\n  colour: true\n",
     {},
     {"unknown key 'runtime.colour' (valid keys in runtime: threads, timeout_s, debug_checks, "
      "log_level, trace, progress, device, ranks_per_node, flight_recorder, straggler_factor, "
      "link_probe_every)"}},
    {"SlowLinkNotAPair",
     "inject:\n  slow_links: [[1, 2], [3]]\n",
     {},
     {"inject.slow_links: expected a list of pairs of ranks, e.g. [[1, 2]], but element 2 is a "
      "sequence"}},
    {"SlowLinkToItself",
     "inject:\n  slow_links: [[2, 2]]\n",
     {},
     {"inject.slow_links", "pairs of two different ranks"}},
    {"FarSectionListsTheSections",
     "hyperparameters:\n  x: 1\n",
     {},
     {"(valid sections: run, model"}},
    {"CodingKeyMisspelt",
     "coding:\n  s: 1\n",
     {},
     {"unknown key 'coding.s' (valid keys in coding: scheme, stragglers, burst, window, lambda, "
      "mu)"}},
    {"InjectSlowRanksNotAList",
     "inject:\n  slow_ranks: 1\n",
     {},
     {"inject.slow_ranks: expected a list of integers, e.g. [1, 3], got '1'"}},
    {"InjectSlowdownBelowOne", "inject:\n  slowdown: 0.5\n", {}, {"inject.slowdown: must be >= 1"}},
    {"InjectProbabilityAboveOne",
     "inject:\n  probability: 2\n",
     {},
     {"inject.probability: must be in [0, 1]"}},
    {"OuterStepsZero", "outer:\n  steps: 0\n", {}, {"outer.steps: must be >= 1, got 0"}},
    {"OuterLrZero", "outer:\n  lr: 0\n", {}, {"outer.lr: must be > 0"}},
    {"OuterMomentumOne", "outer:\n  momentum: 1\n", {}, {"outer.momentum: must be in [0, 1)"}},
    {"OuterStalenessPenaltyNegative",
     "outer:\n  staleness_penalty: -1\n",
     {},
     {"outer.staleness_penalty: must be >= 0 (0: no penalty), got -1"}},
    {"OuterClipNormNegative",
     "outer:\n  clip_norm: -0.5\n",
     {},
     {"outer.clip_norm: must be >= 0 (0: no clipping), got -0.5"}},
    {"UnknownOuterOptimizer",
     "outer:\n  optimizer: adam\n",
     {},
     {"outer.optimizer: expected one of nesterov, sgd, got 'adam'"}},
    {"UnknownNonFinitePolicy",
     "train:\n  nonfinite: ignore\n",
     {},
     {"train.nonfinite: expected one of error, skip, got 'ignore'"}},
    {"UnknownNonFinitePolicyOverride",
     "",
     {"train.nonfinite=warn"},
     {"train.nonfinite: expected one of error, skip, got 'warn'"}},
    {"UnknownCompressor",
     "compression:\n  name: zip\n",
     {},
     {"compression.name: expected one of none, fp16, bf16, qsgd, topk, randomk, sign, dgc, "
      "powersgd, got 'zip'"}},
    {"NotAnInteger",
     "data:\n  batch_size: abc\n",
     {},
     {"bad.yaml:2:3: data.batch_size: expected an integer, got 'abc'"}},
    {"FractionalInteger",
     "train:\n  epochs: 1.5\n",
     {},
     {"train.epochs: expected an integer, got '1.5'"}},
    {"IntegerOverflow",
     "train:\n  max_steps: 99999999999999999999\n",
     {},
     {"train.max_steps: expected an integer"}},
    {"NegativeSeed",
     "run:\n  seed: -1\n",
     {},
     {"run.seed: expected a non-negative integer, got '-1'"}},
    {"NotABool",
     "sync:\n  overlap: yes\n",
     {},
     {"sync.overlap: expected true or false, got 'yes'"}},
    {"NotANumber", "optimizer:\n  lr: fast\n", {}, {"optimizer.lr: expected a number, got 'fast'"}},
    {"NotFinite", "runtime:\n  timeout_s: .inf\n", {}, {"runtime.timeout_s: expected a number"}},
    {"SequenceValue",
     "data:\n  batch_size: [1, 2]\n",
     {},
     {"data.batch_size: expected an integer, got a sequence"}},
    {"NullNumber",
     "data:\n  batch_size:\n",
     {},
     {"data.batch_size: expected an integer, got null"}},
    {"BatchSizeZero", "data:\n  batch_size: 0\n", {}, {"data.batch_size: must be >= 1, got 0"}},
    {"LrZero", "optimizer:\n  lr: 0\n", {}, {"optimizer.lr: must be > 0"}},
    {"MomentumOne", "optimizer:\n  momentum: 1\n", {}, {"optimizer.momentum: must be in [0, 1)"}},
    {"NegativeWeightDecay",
     "optimizer:\n  weight_decay: -0.1\n",
     {},
     {"optimizer.weight_decay: must be >= 0"}},
    {"NegativeWarmup", "optimizer:\n  warmup_steps: -1\n", {}, {"optimizer.warmup_steps"}},
    {"MinLrRatio", "optimizer:\n  min_lr_ratio: 1.5\n", {}, {"optimizer.min_lr_ratio: must be"}},
    {"EpochsZero", "train:\n  epochs: 0\n", {}, {"train.epochs: must be >= 1"}},
    {"NegativeMaxSteps", "train:\n  max_steps: -1\n", {}, {"train.max_steps: must be >= 0"}},
    {"NegativeEvalEvery", "train:\n  eval_every: -5\n", {}, {"train.eval_every: must be >= 0"}},
    {"NegativeCheckpointEvery", "train:\n  checkpoint_every: -1\n", {}, {"train.checkpoint_every"}},
    {"ThreadsZero", "runtime:\n  threads: 0\n", {}, {"runtime.threads: must be >= 1"}},
    {"TimeoutZero", "runtime:\n  timeout_s: 0\n", {}, {"runtime.timeout_s: must be > 0"}},
    {"RanksPerNodeNegative",
     "runtime:\n  ranks_per_node: -1\n",
     {},
     {"runtime.ranks_per_node: must be >= 0"}},
    {"BucketZero", "sync:\n  bucket_mb: 0\n", {}, {"sync.bucket_mb: must be > 0"}},
    {"TestFractionOne",
     "data:\n  test_fraction: 1\n",
     {},
     {"data.test_fraction: must be in (0, 1)"}},
    {"NegativeLimit", "data:\n  train_limit: -1\n", {}, {"data.train_limit: must be >= 0"}},
    {"HiddenZero", "model:\n  hidden: 0\n", {}, {"model.hidden: must be >= 1"}},
    {"ContextOne", "model:\n  context: 1\n", {}, {"model.context: must be >= 2"}},
    {"HeadsDoNotDivide",
     "model:\n  d_model: 130\n  heads: 4\n",
     {},
     {"model.d_model: must be divisible by model.heads"}},
    {"EmptyRunDir", "run:\n  dir: \"\"\n", {}, {"run.dir: must be non-empty"}},
    {"UnknownModel",
     "model:\n  name: resnet\n",
     {},
     {"model.name: expected one of mlp, cnn, char_transformer, torchscript, got 'resnet'"}},
    {"UnknownData",
     "data:\n  name: cifar\n",
     {},
     {"data.name: expected one of fashion_mnist, text"}},
    {"UnknownOptimizer",
     "optimizer:\n  name: adam\n",
     {},
     {"optimizer.name: expected one of sgd, adamw"}},
    {"UnknownSchedule",
     "optimizer:\n  schedule: step\n",
     {},
     {"optimizer.schedule: expected one of"}},
    {"UnknownStrategy",
     "sync:\n  strategy: gossip\n",
     {},
     {"sync.strategy: expected one of allreduce"}},
    {"UnknownAlgorithm",
     "sync:\n  algorithm: tree\n",
     {},
     {"sync.algorithm: expected one of ring, star, rhd, native, shm, hierarchical, auto"}},
    {"UnknownResume",
     "train:\n  resume: always\n",
     {},
     {"train.resume: expected one of never, auto"}},
    {"UnknownLogLevel",
     "runtime:\n  log_level: verbose\n",
     {},
     {"runtime.log_level: expected one of"}},
    {"TransformerOnImages",
     "model:\n  name: char_transformer\n",
     {},
     {"model.name 'char_transformer' needs data.name 'text', got 'fashion_mnist'"}},
    {"MlpOnText",
     "data:\n  name: text\n",
     {},
     {"model.name 'mlp' needs data.name 'fashion_mnist'"}},
    {"OverrideWithoutEquals",
     "",
     {"optimizer.lr"},
     {"override 'optimizer.lr': expected section.key=value"}},
    {"OverrideWithoutKey", "", {"=3"}, {"override '=3': expected section.key=value"}},
    {"OverrideUnknownKey",
     "",
     {"optimizer.lrr=0.1"},
     {"override 'optimizer.lrr=0.1'",
      "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"}},
    {"OverrideWithoutSection", "", {"lr=0.1"}, {"unknown key 'lr' (did you mean 'optimizer.lr'?)"}},
    {"OverrideWrongType",
     "",
     {"data.batch_size=abc"},
     {"override 'data.batch_size=abc'", "data.batch_size: expected an integer, got 'abc'"}},
    {"OverrideMalformedValue", "", {"run.dir=[a"}, {"override 'run.dir=[a'", "run.dir"}},
    {"MalformedYaml", "model:\n  name: [mlp\n  hidden: 3\n", {}, {"bad.yaml:", "malformed YAML"}},
    {"BadIndentation", "model:\n  name: mlp\n hidden: 3\n", {}, {"bad.yaml:3:", "malformed YAML"}},
    {"TabIndentation",
     "model:\n\tname: mlp\n",
     {},
     {"malformed YAML", "line 2 is indented with a tab: YAML indents with spaces only"}},
    {"ListElementNotAnInteger",
     "inject:\n  slow_ranks: [1, two]\n",
     {},
     {"inject.slow_ranks: expected a list of integers, e.g. [1, 3], but element 2 is 'two'"}},
    {"DenseStepsWithDgc",
     "compression:\n  name: dgc\n  dense_steps: 3\n",
     {},
     {"compression.dense_steps", "compression.warmup_epochs"}},
    {"SectionNotAMap",
     "model: mlp\n",
     {},
     {"bad.yaml:1:1: model: expected a map of keys, got 'mlp'"}},
    {"TopLevelNotAMap", "- model\n- data\n", {}, {"top level must be a map"}},
    {"DuplicateKey",
     "data:\n  batch_size: 8\n  batch_size: 16\n",
     {},
     {"bad.yaml:3:3: duplicate key 'data.batch_size'"}},
};

INSTANTIATE_TEST_SUITE_P(Config, BadConfig, testing::ValuesIn(kBadCases),
                         [](const testing::TestParamInfo<BadCase>& info) {
                           return std::string(info.param.name);
                         });

class ConfigFile : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("braid_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, LoadsAFileWithOverrides) {
  std::string path = write("ok.yaml", "data:\n  batch_size: 32\n");
  Config c = load_config(path, {"train.epochs=2"});
  EXPECT_EQ(c.data.batch_size, 32);
  EXPECT_EQ(c.train.epochs, 2);
  EXPECT_EQ(load_config(write("empty.yaml", "")).hash(), parse_config("", {}, "x").hash());
}

TEST_F(ConfigFile, ErrorsNameThePath) {
  std::string path = write("bad.yaml", "optimizer:\n  lrr: 1\n");
  try {
    load_config(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ":2:3: unknown key 'optimizer.lrr'", 0), 0u)
        << e.what();
  }
}

TEST_F(ConfigFile, MissingFileOrDirectoryIsAConfigError) {
  const std::string missing = (dir_ / "nope.yaml").string();
  try {
    load_config(missing);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": cannot read config file"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_config(dir_.string()), ConfigError);
}

// Ranks reading different cost model files at the same path must not start: the contents are
// part of the hash.
TEST(Config, HashCoversTheCostModelFilesContents) {
  const std::string path = ::testing::TempDir() + "/braid_cost_model_hash.yaml";
  std::ofstream(path) << "alpha_s: 1e-6\n";
  const Config config = parse_config("", {"sync.cost_model=" + path}, "x");
  const std::uint64_t before = config.hash();
  std::ofstream(path) << "alpha_s: 2e-6\n";
  EXPECT_NE(config.hash(), before);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace braid
