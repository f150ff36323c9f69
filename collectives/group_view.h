// GroupView: some ranks of a transport's group seen as a group of their own, without a
// collective split: rank i of the view is rank members[i] of the parent, messages go through the
// parent with the tag the caller gives, and the parent's byte counters (per parent rank) count
// them. Hierarchical allreduce runs the flat algorithms over the ranks that share a local index
// this way, inside one operation and its tag. A view cannot be split or duplicated.
#pragma once

#include <vector>

#include "collectives/transport.h"
#include "common/error.h"

namespace braid {

class GroupView : public Transport {
 public:
  GroupView(Transport& parent, std::vector<int> members, int rank)
      : parent_(parent), members_(std::move(members)), rank_(rank) {
    init_counters(size());
  }
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  const char* name() const override { return parent_.name(); }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    return parent_.isend(data, bytes, member(peer), tag);
  }
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override {
    return parent_.irecv(data, bytes, member(peer), tag);
  }
  std::shared_ptr<Transport> split(int, int) override {
    throw CheckError("a GroupView cannot be split");
  }
  int max_tag() const override { return parent_.max_tag(); }

 private:
  int member(int peer) const {
    BRAID_CHECK(peer >= 0 && peer < size(), "peer ", peer, " of a group of ", size());
    return members_[peer];
  }
  Transport& parent_;
  std::vector<int> members_;
  int rank_;
};

}  // namespace braid
