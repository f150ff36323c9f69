#include "optimizers/grad_buckets.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/nonfinite_guard.h"

namespace braid {

GradBuckets::GradBuckets(std::vector<at::Tensor> parameters, double bucket_mb, bool usage_slots,
                         const Allocate& allocate)
    : params_(std::move(parameters)), usage_slots_(usage_slots) {
  BRAID_CHECK(bucket_mb > 0, "bucket_mb ", bucket_mb);
  const int n = parameter_count();
  bucket_of_.assign(n, -1);
  offset_of_.assign(n, 0);
  slot_of_.assign(n, 0);
  arrived_.assign(n, false);
  seen_.assign(n, Seen{});
  const auto cap = static_cast<std::int64_t>(bucket_mb * (1 << 20));
  std::vector<at::TensorOptions> options;
  for (int i = n - 1; i >= 0; --i) {
    const at::Tensor& p = params_[i];
    const std::int64_t bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
    const bool fits = !buckets_.empty() && options.back().dtype() == p.dtype() &&
                      (buckets_.back().gradient_elements * p.element_size() + bytes <= cap);
    if (!fits) {
      buckets_.emplace_back();
      options.push_back(p.options().requires_grad(false));
    }
    Bucket& bucket = buckets_.back();
    bucket_of_[i] = bucket_count() - 1;
    offset_of_[i] = bucket.gradient_elements;
    slot_of_[i] = static_cast<int>(bucket.params.size());
    bucket.gradient_elements += p.numel();
    bucket.params.push_back(i);
  }
  std::vector<std::int64_t> elements(buckets_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    // The usage slots, then the non-finite slot.
    const std::int64_t slots =
        usage_slots_ ? static_cast<std::int64_t>(bucket.params.size()) + 1 : 0;
    elements[b] = bucket.gradient_elements + slots;
    bucket.pending = static_cast<int>(bucket.params.size());
  }
  place(elements, options, allocate);
}

void GradBuckets::place(const std::vector<std::int64_t>& elements,
                        const std::vector<at::TensorOptions>& options, const Allocate& allocate) {
  constexpr std::size_t kAlign = 64;
  std::vector<std::size_t> offset(buckets_.size());
  std::size_t total = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    offset[b] = total;
    const std::size_t bytes = elements[b] * options[b].dtype().itemsize();
    total += (bytes + kAlign - 1) / kAlign * kAlign;
  }
  const bool on_cpu = std::all_of(options.begin(), options.end(),
                                  [](const at::TensorOptions& o) { return o.device().is_cpu(); });
  char* block = allocate && on_cpu && total > 0 ? static_cast<char*>(allocate(total)) : nullptr;
  in_block_ = block != nullptr;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    // The block's owner frees it (after the buckets): the tensors only borrow it.
    buckets_[b].flat = block ? at::from_blob(block + offset[b], {elements[b]}, options[b])
                             : at::zeros({elements[b]}, options[b]);
  }
}

at::Tensor GradBuckets::gradients(int bucket) const {
  return buckets_[bucket].flat.narrow(0, 0, buckets_[bucket].gradient_elements);
}

at::Tensor GradBuckets::slots(int bucket) const {
  const Bucket& b = buckets_[bucket];
  return b.flat.narrow(0, b.gradient_elements, b.flat.numel() - b.gradient_elements);
}

at::Tensor GradBuckets::view(int param) const {
  return buckets_[bucket_of_[param]].flat.narrow(0, offset_of_[param], params_[param].numel());
}

BucketLayout GradBuckets::layout(int bucket) const {
  BucketLayout layout;
  for (int param : buckets_[bucket].params) {
    layout.push_back({offset_of_[param], params_[param].sizes().vec()});
  }
  return layout;
}

bool GradBuckets::arrive(int param) {
  if (arrived_[param]) return false;
  arrived_[param] = true;
  return --buckets_[bucket_of_[param]].pending == 0;
}

void GradBuckets::capture(int bucket) {
  Bucket& b = buckets_[bucket];
  for (int i : b.params) {
    const at::Tensor& grad = params_[i].grad();
    if (grad.defined()) {
      view(i).copy_(grad.reshape({-1}));
    } else {
      view(i).zero_();
    }
    Seen& seen = seen_[i];
    seen.grad =
        c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(grad.getIntrusivePtr());
    seen.version = grad.defined() ? grad._version() : 0;
    seen.defined = grad.defined();
    seen.captured = true;
    if (usage_slots_) b.flat[b.gradient_elements + slot_of_[i]].fill_(seen.defined ? 1 : 0);
  }
}

int GradBuckets::changed_since_capture(int bucket) const {
  int first = -1;  // the bucket holds its parameters in reverse order
  for (int i : buckets_[bucket].params) {
    const Seen& seen = seen_[i];
    const at::Tensor& grad = params_[i].grad();
    const bool same =
        seen.captured && seen.defined == grad.defined() &&
        (!grad.defined() || (seen.grad._unsafe_get_target() == grad.unsafeGetTensorImpl() &&
                             seen.version == grad._version()));
    if (!same && (first < 0 || i < first)) first = i;
  }
  return first;
}

int GradBuckets::check_finite(int bucket) {
  Bucket& b = buckets_[bucket];
  const bool finite = all_finite(gradients(bucket));
  if (usage_slots_) b.flat[b.flat.numel() - 1].fill_(finite ? 0 : 1);
  if (finite) return -1;
  int first = -1;  // the bucket holds its parameters in reverse order
  for (int i : b.params) {
    if (!all_finite(view(i)) && (first < 0 || i < first)) first = i;
  }
  return first;
}

bool GradBuckets::nonfinite_anywhere(int bucket) const {
  BRAID_CHECK(usage_slots_, "nonfinite_anywhere needs usage slots");
  const at::Tensor& flat = buckets_[bucket].flat;
  // Summed or averaged, the slot is exactly zero only if every rank sent 0; a NaN slot (a plain
  // allreduce of a NaN bucket cannot make one, but a corrupt payload could) counts as set.
  const double slot = flat[flat.numel() - 1].item<double>();
  return slot != 0;
}

std::vector<bool> GradBuckets::used_anywhere() const {
  BRAID_CHECK(usage_slots_, "used_anywhere needs usage slots");
  std::vector<bool> used(params_.size());
  for (const Bucket& b : buckets_) {
    const auto n = static_cast<std::int64_t>(b.params.size());
    // Copied to the host (the bucket may live on a GPU) before it is read element by element.
    at::Tensor slots =
        b.flat.narrow(0, b.gradient_elements, n).to(at::kCPU, at::kDouble).contiguous();
    const double* value = host_data<double>(slots, "gradient usage slots");
    for (std::int64_t k = 0; k < n; ++k) used[b.params[k]] = value[k] != 0;
  }
  return used;
}

void GradBuckets::new_backward() {
  std::fill(arrived_.begin(), arrived_.end(), false);
  for (Bucket& b : buckets_) b.pending = static_cast<int>(b.params.size());
}

void GradBuckets::reset() {
  new_backward();
  std::fill(seen_.begin(), seen_.end(), Seen{});
}

}  // namespace braid
