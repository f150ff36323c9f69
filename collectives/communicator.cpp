#include "collectives/communicator.h"

#include <algorithm>
#include <cstring>

#include "collectives/allreduce_hierarchical.h"
#include "collectives/blocks.h"
#include "collectives/collectives.h"
#include "collectives/reduce.h"
#include "common/error.h"
#include "common/trace.h"

namespace braid {

namespace {

constexpr int kCheckTag = 1;
constexpr int kFirstOpTag = 16;

// Fixed-size description that debug mode exchanges before each collective.
struct CheckRecord {
  std::uint64_t seq;
  std::int64_t count;
  std::int32_t dtype;
  std::int32_t root;
  char op[24];
  char algorithm[16];
};
static_assert(sizeof(CheckRecord) == 64, "CheckRecord is exchanged as 8 int64 values");

CheckRecord record_of(const OpDesc& desc, std::uint64_t seq) {
  CheckRecord record{};
  record.seq = seq;
  record.count = desc.count;
  record.dtype = static_cast<std::int32_t>(desc.dtype);
  record.root = desc.root;
  std::strncpy(record.op, desc.op.c_str(), sizeof(record.op) - 1);
  std::strncpy(record.algorithm, desc.algorithm.c_str(), sizeof(record.algorithm) - 1);
  return record;
}

std::string describe(const CheckRecord& record) {
  OpDesc desc;
  desc.op.assign(record.op, strnlen(record.op, sizeof(record.op)));
  desc.algorithm.assign(record.algorithm, strnlen(record.algorithm, sizeof(record.algorithm)));
  desc.count = record.count;
  desc.dtype = static_cast<DType>(record.dtype);
  desc.root = record.root;
  return str_cat(desc.text(), " as sequence number ", record.seq);
}

bool same(const CheckRecord& a, const CheckRecord& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

std::string OpDesc::text() const {
  std::string args = algorithm.empty() ? "" : algorithm + ", ";
  args += str_cat(count, " x ", dtype_name(dtype));
  if (root >= 0) args += str_cat(", root ", root);
  return str_cat(op, "(", args, ")");
}

Communicator::Communicator(std::shared_ptr<Transport> transport, CommOptions options)
    : transport_(transport->dup(Clock::now() + options.timeout)),
      options_(std::move(options)),
      rank_(transport_->rank()),
      size_(transport_->size()),
      tag_span_(std::int64_t{transport_->max_tag()} - kFirstOpTag + 1),
      shared_memory_(transport_->shared_memory()),
      hierarchical_(hierarchical_applies(shared_memory_) && size_ > 1),
      flight_channel_(options_.recorder ? options_.recorder->open() : -1),
      waiting_(options_.recorder ? options_.recorder->waiting_slot(flight_channel_) : nullptr),
      thread_([this] { loop(); }) {
  // NCCL completes a group of sends and receives as a whole (transport_nccl.h): a pipeline of
  // segments would wait on itself, so every step moves one segment.
  if (transport_->moves_device_memory()) options_.allreduce.segment_bytes = std::size_t{1} << 62;
  // A peer may spend up to an operation's timeout before its teardown too (saving a model).
  if (SharedMemory* shm = transport_->shared_memory()) shm->set_release_timeout(options_.timeout);
  share_cost_model();
}

Communicator::~Communicator() {
  // Abort first so a collective waiting on a peer that will never answer ends now, not at its
  // deadline; the join then guarantees no buffer is touched after the destructor returns.
  abort("the communicator was destroyed");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_all();
  thread_.join();
}

void Communicator::abort(std::string reason) {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!aborted_.load()) {
      abort_reason_ = std::move(reason);
      aborted_.store(true);
    }
    dropped.swap(queue_);
  }
  for (Job& job : dropped) {
    record_end(job, "cancelled");
    job.work.mark_completed(abort_error(str_cat(job.desc.text(), " was cancelled")));
  }
}

std::exception_ptr Communicator::abort_error(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::make_exception_ptr(
      CommError(str_cat(what, " (communicator aborted: ", abort_reason_, ")")));
}

std::shared_ptr<Communicator> Communicator::channel(CommOptions options) {
  // dup() is a collective on this communicator's transport, which only its thread may use (and
  // in this communicator's order of collectives, which MPI requires on one MPI communicator).
  std::shared_ptr<Communicator> channel;
  if (!options.recorder) options.recorder = options_.recorder;  // one record of the whole rank
  Work work = submit({"channel", "dup", 0, DType::kFloat32}, [&](OpContext&) {
    channel = std::make_shared<Communicator>(transport_, std::move(options));
  });
  work.wait();
  return channel;
}

int Communicator::tag_of(std::uint64_t sequence) const {
  return static_cast<int>(kFirstOpTag + static_cast<std::int64_t>(sequence % tag_span_));
}

Work Communicator::submit(OpDesc desc, std::function<void(OpContext&)> body) {
  Work work = Work::pending(str_cat(desc.text(), " on rank ", rank_));
  bool refused = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    refused = aborted_.load();
    if (!refused) {
      BRAID_CHECK(!stopping_, "submit on a communicator that is shutting down");
      const std::uint64_t seq = submitted_++;
      if (options_.recorder) options_.recorder->queued(flight_channel_, seq, desc);
      // Late receives of past partial gathers are discarded before each operation runs.
      auto reaping = [this, body = std::move(body)](OpContext& ctx) {
        late_.reap(ctx.tag());
        body(ctx);
      };
      queue_.push_back(Job{std::move(desc), std::move(reaping), work, seq});
    }
  }
  if (refused) {
    work.mark_completed(abort_error(str_cat(desc.text(), " was not run")));
    return work;
  }
  queued_.notify_one();
  return work;
}

void Communicator::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (stopping_) {
        record_end(job, "cancelled: the communicator shut down");
        job.work.mark_completed(std::make_exception_ptr(
            CommError(str_cat(job.desc.text(), " was cancelled: the communicator shut down"))));
        continue;
      }
    }
    run(job);
  }
}

void Communicator::run(Job& job) {
  const std::uint64_t seq = seq_++;
  if (aborted_.load()) {
    record_end(job, "not run: the communicator was aborted");
    job.work.mark_completed(abort_error(str_cat(job.desc.text(), " was not run")));
    return;
  }
  if (!broken_.empty()) {
    record_end(job, "not run: the communicator failed earlier");
    job.work.mark_completed(std::make_exception_ptr(CommError(
        str_cat(job.desc.text(), " not run: the communicator failed earlier: ", broken_))));
    return;
  }
  if (options_.recorder) options_.recorder->started(flight_channel_, job.seq);
  try {
    check_ahead(job.desc, seq);
    if (options_.debug_checks && size_ > 1 && !job.desc.partial) cross_check(job.desc, seq);
    const int tag = tag_of(seq);
    const Clock::time_point begin = Clock::now();
    const auto timeout = job.desc.timeout.count() > 0 ? job.desc.timeout : options_.timeout;
    OpContext ctx(*transport_, tag, begin + timeout, job.desc.text(), seq, &aborted_);
    ctx.set_ahead(this);
    ctx.set_waiting_slot(waiting_);
    running_ = &job.desc;
    job.body(ctx);
    running_ = nullptr;
    // One trace event per collective on the communication thread's row: a bucket's exchange.
    if (trace::enabled()) trace::complete(str_cat(job.desc.text(), " #", seq), "comm", begin);
    record_end(job);
    job.work.mark_completed();
  } catch (const std::exception& e) {
    running_ = nullptr;
    broken_ = e.what();
    transport_->mark_failed();
    record_end(job, e.what());
    job.work.mark_completed(aborted_.load() ? abort_error(e.what()) : std::current_exception());
  }
}

void Communicator::record_end(const Job& job, const std::string& error) {
  if (options_.recorder) options_.recorder->finished(flight_channel_, job.seq, error);
}

int Communicator::reserve(std::uint64_t from, std::uint64_t ahead) {
  // Tags wrap after tag_span_ operations: further ahead, the receive would share a tag with
  // an operation before its own.
  BRAID_CHECK(ahead >= 1 && static_cast<std::int64_t>(ahead) < tag_span_, "a receive posted ",
              ahead, " operations ahead (at most ", tag_span_ - 1, ")");
  BRAID_CHECK(running_ != nullptr, "recv_ahead outside a running operation");
  ahead_.emplace(from + ahead, *running_);
  return tag_of(from + ahead);
}

void Communicator::check_ahead(const OpDesc& desc, std::uint64_t seq) {
  if (desc.forgets_ahead) ahead_.clear();
  const auto posted = ahead_.find(seq);
  if (posted == ahead_.end()) return;
  const OpDesc poster = posted->second;
  ahead_.erase(ahead_.begin(), std::next(posted));
  if (!same(record_of(poster, seq), record_of(desc, seq))) {
    throw CommError(str_cat("rank ", rank_, ": ", poster.text(),
                            " posted a receive ahead for "
                            "sequence number ",
                            seq, ", but the operation with that number is ", desc.text(),
                            " (receives posted ahead must be dropped before "
                            "another kind of operation runs)"));
  }
}

void Communicator::cross_check(const OpDesc& desc, std::uint64_t seq) {
  OpContext ctx(*transport_, kCheckTag,
                Clock::now() + (desc.timeout.count() > 0 ? desc.timeout : options_.timeout),
                "debug check before " + desc.text(), seq, &aborted_);
  std::vector<CheckRecord> all(size_);
  CheckRecord mine = record_of(desc, seq);
  constexpr std::int64_t kWords = sizeof(CheckRecord) / 8;
  braid::allgatherv(ctx, Buffer{&mine, kWords, DType::kInt64},
                    Buffer{all.data(), kWords * size_, DType::kInt64},
                    std::vector<std::int64_t>(size_, kWords));
  for (int r = 1; r < size_; ++r) {
    if (!same(all[r], all[0])) {
      throw CommError(str_cat("collective mismatch: rank 0 called ", describe(all[0]), " but rank ",
                              r, " called ", describe(all[r])));
    }
  }
}

void Communicator::share_cost_model() {
  if (size_ == 1) return;
  constexpr std::int64_t kMaxValues = 5 + 2 * 1000000;  // CostModel::deserialize's own limit
  auto values = std::make_shared<std::vector<double>>();
  Work work =
      submit({"share_cost_model", "tree", 0, DType::kFloat64, 0}, [this, values](OpContext& ctx) {
        if (ctx.rank() == 0) *values = options_.allreduce.cost_model.serialize();
        auto n = static_cast<std::int64_t>(values->size());
        braid::broadcast(ctx, Buffer{&n, 1, DType::kInt64}, 0);
        if (n < 0 || n > kMaxValues) {
          throw CommError(str_cat("rank 0 announced a cost model of ", n, " values"));
        }
        values->resize(static_cast<std::size_t>(n));
        braid::broadcast(ctx, Buffer{values->data(), n, DType::kFloat64}, 0);
        options_.allreduce.cost_model = CostModel::deserialize(*values);
      });
  try {
    work.wait();
  } catch (const std::exception&) {
    // The communicator is broken now and every later collective fails naming this error; a
    // constructor that threw would have to stop the thread it just started.
  }
}

std::uint64_t Communicator::shared_memory_bytes() const {
  return shared_memory_ ? shared_memory_->bytes_read() : 0;
}

std::string Communicator::resolve(const std::string& name, std::size_t bytes) const {
  if (name != "auto") return name;
  if (hierarchical_) return "hierarchical";
  return options_.allreduce.cost_model.choose(size_, bytes, transport_->native() != nullptr);
}

void* Communicator::allocate_shared(std::size_t bytes) {
  void* memory = nullptr;
  submit({"allocate_shared", "shm", static_cast<std::int64_t>(bytes), DType::kUInt8},
         [&](OpContext& ctx) {
           SharedMemory* shm = ctx.transport().shared_memory();
           if (shm && shm->layout().local_size > 1) memory = shm->allocate(bytes);
         })
      .wait();
  return memory;
}

std::string Communicator::registered_algorithm(const std::string& name) const {
  const bool one_node = shared_memory_ && shared_memory_->layout().nodes == 1 && size_ > 1;
  return name == "auto" && one_node ? "shm" : name;
}

Allreduce& Communicator::algorithm(const std::string& name) {
  auto& slot = algorithms_[name];
  if (!slot) slot = make_allreduce(name, options_.allreduce);
  return *slot;
}

namespace {
void check_algorithm(const std::string& name) {
  const auto& names = allreduce_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    make_allreduce(name);  // throws the ConfigError listing the valid names
  }
}
}  // namespace

void Communicator::check_device(const char* op, const Buffer& buffer) const {
  if (buffer.device.is_cpu() || transport_->moves_device_memory()) return;
  throw CommError(str_cat(op, " got a buffer on ", buffer.device.str(), ", but the '",
                          transport_->name(),
                          "' transport moves only CPU memory; use the NCCL transport (a CUDA "
                          "build with runtime.device: cuda) or copy the tensor to the CPU"));
}

Work Communicator::allreduce(Buffer buffer, ReduceOp op, const std::string& name) {
  check_algorithm(name);
  check_device("allreduce", buffer);
  check_reducible(buffer.dtype, op);
  const std::string algo = resolve(name, buffer.bytes());
  return submit({"allreduce", algo, buffer.count, buffer.dtype}, [=](OpContext& ctx) {
    algorithm(algo).run(ctx, buffer, op);
    if (op == ReduceOp::kAvg) finish_avg(buffer, size_);
  });
}

Work Communicator::allreduce_fused(std::vector<Buffer> buffers, ReduceOp op,
                                   const std::string& name) {
  check_algorithm(name);
  std::int64_t total = 0;
  for (const Buffer& b : buffers) {
    BRAID_CHECK(b.dtype == buffers.front().dtype, "fused allreduce mixes ",
                dtype_name(buffers.front().dtype), " and ", dtype_name(b.dtype));
    BRAID_CHECK(b.device == buffers.front().device, "fused allreduce mixes ",
                buffers.front().device.str(), " and ", b.device.str());
    check_device("allreduce_fused", b);
    total += b.count;
  }
  const DType dtype = buffers.empty() ? DType::kFloat32 : buffers.front().dtype;
  const Device device = buffers.empty() ? Device{} : buffers.front().device;
  check_reducible(dtype, op);
  const std::string algo = resolve(name, total * dtype_size(dtype));
  return submit({"allreduce_fused", algo, total, dtype}, [this, buffers = std::move(buffers), total,
                                                          dtype, device, op, algo](OpContext& ctx) {
    Buffer flat{scratch_.get(total * dtype_size(dtype), device), total, dtype, device};
    std::int64_t offset = 0;
    for (const Buffer& b : buffers) {
      copy_block(flat.slice(offset, b.count), b);
      offset += b.count;
    }
    algorithm(algo).run(ctx, flat, op);
    if (op == ReduceOp::kAvg) finish_avg(flat, size_);
    offset = 0;
    for (const Buffer& b : buffers) {
      copy_block(b, flat.slice(offset, b.count));
      offset += b.count;
    }
  });
}

Work Communicator::reduce_scatter(Buffer input, Buffer output, ReduceOp op) {
  check_reducible(input.dtype, op);
  check_device("reduce_scatter", input);
  check_device("reduce_scatter", output);
  return submit({"reduce_scatter", "ring", input.count, input.dtype}, [=](OpContext& ctx) {
    braid::reduce_scatter(ctx, input, output, op, scratch_);
    if (op == ReduceOp::kAvg) finish_avg(output, size_);
  });
}

Work Communicator::allgather(Buffer input, Buffer output) {
  return allgatherv(input, output, std::vector<std::int64_t>(size_, input.count));
}

Work Communicator::allgatherv(Buffer input, Buffer output, std::vector<std::int64_t> counts) {
  check_device("allgatherv", input);
  check_device("allgatherv", output);
  return submit({"allgatherv", "ring", output.count, input.dtype},
                [=, counts = std::move(counts)](OpContext& ctx) {
                  braid::allgatherv(ctx, input, output, counts);
                });
}

Work Communicator::broadcast(Buffer buffer, int root) {
  check_device("broadcast", buffer);
  return submit({"broadcast", "tree", buffer.count, buffer.dtype, root},
                [=](OpContext& ctx) { braid::broadcast(ctx, buffer, root); });
}

Work Communicator::gather(Buffer input, Buffer output, int root) {
  check_device("gather", input);
  check_device("gather", output);
  return submit({"gather", "direct", input.count, input.dtype, root},
                [=](OpContext& ctx) { braid::gather(ctx, input, output, root); });
}

Work Communicator::alltoall(Buffer input, Buffer output) {
  BRAID_CHECK(input.count % size_ == 0, "alltoall input of ", input.count,
              " elements does not split into ", size_, " equal blocks");
  std::vector<std::int64_t> counts(size_, input.count / size_);
  return alltoallv(input, counts, output, counts);
}

Work Communicator::alltoallv(Buffer input, std::vector<std::int64_t> send_counts, Buffer output,
                             std::vector<std::int64_t> recv_counts) {
  check_device("alltoallv", input);
  check_device("alltoallv", output);
  return submit(
      {"alltoallv", "pairwise", size_, input.dtype},
      [=, send_counts = std::move(send_counts), recv_counts = std::move(recv_counts)](
          OpContext& ctx) { braid::alltoallv(ctx, input, send_counts, output, recv_counts); });
}

BytesResult Communicator::allgather_bytes(std::vector<std::uint8_t> mine) {
  auto data = std::make_shared<std::vector<std::vector<std::uint8_t>>>();
  // Count 0 in the description: sizes differ per rank by design, so debug mode must not
  // compare them.
  Work work = submit({"allgather_bytes", "ring", 0, DType::kUInt8},
                     [data, mine = std::move(mine)](OpContext& ctx) {
                       *data = braid::allgather_bytes(ctx, mine);
                     });
  return {work, data};
}

FirstKResult Communicator::gather_first_k(Buffer input, Buffer output, int k, int root) {
  // Late blocks land in memory the communicator owns, on the CPU.
  if (input.device.is_cuda() || output.device.is_cuda()) {
    throw CommError("gather_first_k moves CPU buffers only; copy the blocks to the CPU first");
  }
  auto ranks = std::make_shared<std::vector<int>>();
  // k goes into the description so that debug mode also catches ranks that disagree on it.
  Work work = submit({str_cat("gather_first_", k), "direct", input.count, input.dtype, root},
                     [this, ranks, input, output, k, root](OpContext& ctx) {
                       *ranks = braid::gather_first_k(ctx, input, output, k, root, late_);
                     });
  return {work, ranks};
}

Work Communicator::barrier() {
  return submit({"barrier", "dissemination", 0, DType::kFloat32},
                [](OpContext& ctx) { braid::barrier(ctx); });
}

}  // namespace braid
