// Config: the one typed tree a run is described by, parsed from YAML in one place
// (load_config) and validated there. Lower layers take their own option structs built from it.
// Key names are a contract with users and outside scripts; docs/config.md lists every key.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace braid {

struct RunConfig {
  std::string dir = "runs/default";  // run.dir
  std::uint64_t seed = 42;           // run.seed
};

struct ModelConfig {
  std::string name = "mlp";   // mlp | cnn | char_transformer | torchscript
  std::int64_t hidden = 256;  // mlp hidden width (784-hidden-hidden-10)
  // char_transformer sizes
  std::int64_t d_model = 128;
  std::int64_t layers = 2;
  std::int64_t heads = 4;
  std::int64_t context = 64;  // tokens per sample
  // torchscript: the file torch.jit.save wrote, and what its forward returns (model_loss_names:
  // cross_entropy | mse | output; runtime/torchscript_model.h).
  std::string path;
  std::string loss = "cross_entropy";
};

struct DataConfig {
  std::string name = "fashion_mnist";  // fashion_mnist | text | arrays | tokens
  std::string path;                    // default: /usr/share/datasets/fashion-mnist, or
                                       // /usr/share/games/fortunes for text
  std::int64_t batch_size = 64;        // per rank
  std::int64_t train_limit = 0;        // use only the first N training samples (0 = all)
  std::int64_t test_limit = 0;         // use only the first N test samples (0 = all)
  double test_fraction = 0.05;         // text: share of the corpus held out for evaluation
  std::string token_dtype = "uint16";  // tokens: uint16 | uint32 (runtime/token_data.h)
  std::int64_t context = 0;            // tokens: tokens per sample (0: model.context)
};

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adamw | onebit_adam
  double lr = 0.05;
  double momentum = 0.9;  // sgd
  bool nesterov = false;  // sgd (and dgc's momentum correction): Nesterov's momentum
  double weight_decay = 0.0;
  std::string schedule = "constant";  // constant | warmup_cosine
  std::int64_t warmup_steps = 0;      // warmup_cosine
  double min_lr_ratio = 0.0;          // warmup_cosine: final lr = lr * min_lr_ratio
  double clip_norm = 0.0;             // > 0: clip the averaged gradient's global L2 norm
  std::int64_t freeze_step = 100000;  // onebit_adam: warm-up steps before the variance freezes
};

struct SyncConfig {
  std::string strategy = "allreduce";  // strategy_names()
  std::string algorithm = "auto";      // ring | star | rhd | native | shm | hierarchical | auto
  double bucket_mb = 4.0;              // fusion bucket cap
  bool overlap = true;                 // reduce buckets during backward
  std::string cost_model;              // optional file from `braid bench allreduce --calibrate`
  bool broadcast_buffers = true;       // rank 0's buffers (running statistics) after each step
  // Robust aggregation (allreduce strategy; optimizers/robust_rules.h): the rule, the bad ranks
  // it must tolerate (f), and each rule's parameters (0: the rule's default).
  std::string aggregator = "mean";   // aggregator_names()
  std::int64_t byzantine = 0;        // f
  double trim = 0;                   // trimmed_mean: fraction cut at each end (0: f of P)
  std::int64_t krum_m = 0;           // multi_krum: gradients averaged (0: P - f)
  double clip_radius = 0;            // centered_clip: tau (0: the median distance)
  std::int64_t clip_iterations = 3;  // centered_clip: L
  std::int64_t flag_subspace = 0;    // flag: r (0: ceil(P/2))
  double flag_lambda = 0;            // flag: pairwise regularisation
  std::int64_t flag_iterations = 3;  // flag: IRLS iterations
};

// compression: how a strategy encodes what it exchanges (the compression/ layer's names).
struct CompressionConfig {
  std::string name = "none";            // compression_names()
  double ratio = 0.01;                  // topk, randomk (dgc: 0.001): fraction kept, (0, 1]
  std::int64_t bits = 4;                // qsgd: bits per level, 1..8
  std::string error_feedback = "none";  // none | ef | ef21 | econtrol
  double eta = 1e-3;                    // econtrol: weight of the fed-back error
  std::int64_t rank = 2;                // powersgd: rank of each matrix's approximation, >= 1
  std::string scale = "tensor";         // sign: one scale per tensor | per 512-element chunk
  std::string exchange = "auto";        // auto | gather | two_phase (gathered compressors)
  bool momentum_correction = false;     // accumulate the momentum per rank before compressing
  bool momentum_masking = true;         // dgc: clear the momentum where the velocity was sent
  std::int64_t warmup_epochs = 4;       // dgc: epochs of exponentially rising sparsity
  std::int64_t dense_steps = 0;         // the first steps exchange uncompressed (allreduce)
  // ef21, econtrol: where h_i starts, gradient (step 0 sent whole) | compressed (C(g))
  std::string estimate_init = "gradient";
};

// outer: the local-update strategies (local_sgd, diloco, streaming_diloco, co2).
struct OuterConfig {
  std::int64_t steps = 20;             // H: inner steps per outer round
  std::string optimizer = "nesterov";  // outer_optimizer_names(): nesterov | sgd (diloco)
  double lr = 0.7;                     // diloco: outer learning rate
  double momentum = 0.9;               // diloco: outer momentum
  // streaming_diloco (optimizers/streaming_diloco_strategy.h)
  std::int64_t fragments = 2;                // F: fragments, each synced every H steps
  std::string fragment_pattern = "strided";  // strided (layer l -> l mod F) | sequential
  std::int64_t delay_steps = 1;              // tau: steps between a fragment's send and merge
  double mix = 0.5;                          // alpha: theta = (1 - alpha) global + alpha local
  std::string wire = "e3m0";                 // float32 | bfloat16 | e3m0 (4-bit)
  // co2: the stale mean is divided by 1 + staleness_penalty; clip_threshold > 0 clamps the
  // outer momentum element-wise, clip_norm > 0 bounds the L2 norm of the outer step (0: off);
  // reset: hard (parameters = anchor at each round end) | soft.
  double staleness_penalty = 1.0;
  double clip_threshold = 1.0;
  double clip_norm = 0;
  std::string reset = "hard";
};

// coding: gradient coding (sync.strategy: gradient_coding; optimizers/gradient_code.h).
struct CodingConfig {
  // gradient_coding: fractional ((s + 1) | n) | cyclic (any s < n); sequential_coding: sr_sgc |
  // m_sgc (optimizers/sequential_code.h).
  std::string scheme = "fractional";
  std::int64_t stragglers = 1;  // s: slow ranks tolerated per step (gradient_coding)
  // sequential_coding's straggler model: bursts of at most `burst` steps, at most `lambda`
  // distinct stragglers in any `window` steps; a step ends (1 + mu) x the fastest rank's time
  // after it began when the missing ranks keep the model.
  std::int64_t burst = 1;
  std::int64_t window = 3;
  std::int64_t lambda = 1;
  double mu = 1.0;
};

// inject: straggler injection for experiments and tests (runtime/straggler.h); off by default.
struct InjectConfig {
  std::vector<std::int64_t> slow_ranks;  // ranks that are slowed, e.g. [1]
  double slowdown = 1.0;                 // a slow step's compute takes this factor as long
  double delay_ms = 0;                   // plus this fixed delay
  double probability = 1.0;              // chance that a slow rank is slow at a given step
  std::uint64_t seed = 0;                // draws of `probability`, per (seed, step, rank)
  // Links made slow in the transport (collectives/transport_slow_link.h): pairs of ranks, e.g.
  // [[1, 2]]; a message between them completes link_delay_ms + (link_slowdown - 1) x its real
  // duration after it really did.
  std::vector<std::array<std::int64_t, 2>> slow_links;
  double link_delay_ms = 0;
  double link_slowdown = 1.0;
  std::int64_t crash_rank = -1;  // this rank kills itself (SIGKILL) in every run; -1: none
  double crash_after_s = 0;      // after training this long (runtime/crash_injection.h)
  // A recorded straggler pattern, CSV step,rank,delay_ms (runtime/straggler_trace.h); "": none.
  std::string trace;
  // Byzantine ranks and what they send (optimizers/byzantine_attack.h).
  std::vector<std::int64_t> byzantine_ranks;
  std::string attack = "none";  // attack_names()
  double alie_z = 1.5;          // alie: mean - z std of the honest gradients
  double ipm_epsilon = 0.1;     // ipm: -epsilon times the honest mean
};

struct TrainConfig {
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;         // > 0: stop at this step whatever epochs says
  std::int64_t eval_every = 0;        // steps; 0 = only the final evaluation
  std::int64_t log_every = 50;        // steps; 0 = no periodic log lines
  std::int64_t checkpoint_every = 0;  // steps; 0 = only the final checkpoint
  std::string resume = "never";       // never | auto
  std::string init_from;              // weights to start a new run from (runtime/initial_weights.h)
  std::int64_t eval_batch_size = 100;  // cnn evaluates 6x faster than with 1000 (cache)
  std::int64_t accumulate_steps = 1;   // backward passes (micro-batches) per optimizer step
  std::string nonfinite = "error";     // a non-finite gradient: error (stop) | skip (the step)
};

struct RuntimeConfig {
  std::int64_t threads = 1;        // torch intra-op threads per rank
  double timeout_s = 300.0;        // deadline of one collective
  bool debug_checks = false;       // cross-check every collective across ranks
  std::string log_level = "info";  // trace | debug | info | warn | error
  bool trace = false;              // Chrome trace per rank in <run dir>/trace/
  std::string progress = "auto";   // auto | bar | lines: rank 0's console output
  std::string device = "auto";     // auto | cpu | cuda: cuda:<local rank> when possible
  // Ranks per node for shared memory and "hierarchical": 0 = what MPI reports (one node per
  // machine); N = each N consecutive ranks form a node (emulating nodes on one machine).
  std::int64_t ranks_per_node = 0;
  // Operations kept per communicator and channel for <run dir>/flight/ (0: none kept or
  // written; stalls are still reported).
  std::int64_t flight_recorder = 2000;
  // A rank computing longer than this x the median of the others in 16 of 20 steps is named
  // a straggler (log and metrics.jsonl).
  double straggler_factor = 1.5;
  // Steps between two timings of every link (runtime/link_probe.h); 0: none. Off by default:
  // with more ranks than cores it times the scheduler, not the links (docs/diagnosis.md).
  std::int64_t link_probe_every = 0;
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  SyncConfig sync;
  CompressionConfig compression;
  OuterConfig outer;
  CodingConfig coding;
  InjectConfig inject;
  TrainConfig train;
  RuntimeConfig runtime;

  // Every key with its resolved value, as YAML that load_config reads back unchanged.
  std::string to_yaml() const;
  // FNV-1a of to_yaml() and the sync.cost_model file's contents: ranks compare it at start.
  std::uint64_t hash() const;
};

// Parses YAML text, then applies overrides "section.key=value" (YAML scalars) in order, then
// validates. `source` names the text in messages (a path). Throws ConfigError naming the key:
// an unknown key together with the closest valid one, a wrong type, a value out of range, an
// unknown name together with the valid ones.
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& source);
// Reads the file (ConfigError if missing or unreadable) and calls parse_config.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace braid
