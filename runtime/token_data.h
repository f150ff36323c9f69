// data.name: tokens: the flat token files LLM pre-training code writes (nanoGPT's prepare.py:
// numpy.ndarray.tofile of uint16 or uint32 ids), memory-mapped.
//
// data.path holds train.bin and val.bin (the test split). A sample is a window of data.context
// tokens (model.context when 0) and the same window one token later as its targets. Windows do
// not overlap and start at multiples of the context, as braid's text data set does, so the
// DataPlan shuffles them each epoch and P ranks with batch b read exactly what one rank with
// batch P*b reads, and a resumed run continues the same stream. The windows are views of the
// mapping: a batch is copied out (and its ids widened to int64) only when it is read, so a
// corpus larger than memory trains. A file whose size is not a multiple of the token size, or
// too short for one window, is a ConfigError naming it.
#pragma once

#include "runtime/data.h"
#include "runtime/models.h"

namespace braid {

// The values data.token_dtype accepts.
const std::vector<std::string>& token_dtype_names();

DataSplits load_tokens(const DataConfig& data, const ModelConfig& model);

// The first block of train.bin (1 Mi tokens) against the model's vocabulary, when the model
// knows it (Model::vocabulary): an id at or above it is a ConfigError naming the file, the id
// and its position. Without a known vocabulary nothing is checked.
void check_token_range(const DataConfig& data, const Dataset& train, Model& model);

}  // namespace braid
