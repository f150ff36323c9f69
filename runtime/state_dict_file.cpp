#include "runtime/state_dict_file.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string_view>

#include "common/error.h"

namespace braid {
namespace {

// Bounds what a hostile file can make the reader allocate: storages are read only at the size
// of their record, and a view may hold more elements than its storage (a stride-0 broadcast)
// only up to kMaxBroadcast.
constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;
constexpr std::int64_t kMaxBroadcast = std::int64_t{1} << 24;

// A value on the unpickling stack: an IValue, a global (a callable or a storage type, by
// "module.name"), or a MARK.
struct Item {
  enum class Kind { value, global, mark };
  Kind kind = Kind::value;
  c10::IValue value;
  std::string global;
};

Item value_item(c10::IValue value) { return Item{Item::Kind::value, std::move(value), {}}; }

using StorageReader =
    std::function<at::Tensor(const std::string& key, at::ScalarType dtype, std::int64_t numel)>;

at::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},
      {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},
      {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},
      {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},
      {"torch.ComplexFloatStorage", at::kComplexFloat},
      {"torch.ComplexDoubleStorage", at::kComplexDouble}};
  const auto found = types.find(global);
  if (found == types.end()) {
    throw Error(str_cat("unsupported storage type ", global));
  }
  return found->second;
}

// The pickle machine: a stack, a memo and the opcodes below.
class Unpickler {
 public:
  Unpickler(std::string_view pickle, StorageReader storage)
      : in_(pickle), storage_(std::move(storage)) {}

  c10::IValue run();

 private:
  void step(std::uint8_t op);
  std::string_view take(std::size_t n);
  std::uint64_t little_endian(std::size_t n);
  std::string line();
  Item pop();
  Item& top();
  std::vector<Item> pop_to_mark();
  c10::IValue pop_value(const char* what);
  void push_tuple(std::vector<Item> items);
  void set_items(std::vector<Item> items);
  void memo_put(std::uint64_t index);
  void memo_get(std::uint64_t index);
  void reduce();
  void build();
  void persistent_load();
  at::Tensor rebuild_tensor(const c10::ivalue::Tuple& args);

  std::string_view in_;
  std::size_t at_ = 0;
  StorageReader storage_;
  std::vector<Item> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, Item> memo_;
  std::map<std::string, at::Tensor> storages_;
  bool stopped_ = false;
};

std::string_view Unpickler::take(std::size_t n) {
  if (n > in_.size() - at_) {
    throw Error(
        str_cat("truncated pickle: ", n, " bytes wanted at byte ", at_, " of ", in_.size()));
  }
  const std::string_view bytes = in_.substr(at_, n);
  at_ += n;
  return bytes;
}

std::uint64_t Unpickler::little_endian(std::size_t n) {
  const std::string_view bytes = take(n);
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n; ++i) {
    value |= std::uint64_t{static_cast<std::uint8_t>(bytes[i])} << (8 * i);
  }
  return value;
}

std::string Unpickler::line() {
  const std::size_t end = in_.find('\n', at_);
  if (end == std::string_view::npos) throw Error("truncated pickle: an unterminated name");
  std::string text(in_.substr(at_, end - at_));
  at_ = end + 1;
  return text;
}

Item Unpickler::pop() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) {
    throw Error(str_cat("malformed pickle: pop from an empty stack at byte ", at_));
  }
  Item item = std::move(stack_.back());
  stack_.pop_back();
  return item;
}

Item& Unpickler::top() {
  if (stack_.empty()) throw Error(str_cat("malformed pickle: empty stack at byte ", at_));
  return stack_.back();
}

std::vector<Item> Unpickler::pop_to_mark() {
  if (marks_.empty()) throw Error(str_cat("malformed pickle: no MARK at byte ", at_));
  const std::size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Item> items(std::make_move_iterator(stack_.begin() + mark),
                          std::make_move_iterator(stack_.end()));
  stack_.resize(mark);
  return items;
}

c10::IValue Unpickler::pop_value(const char* what) {
  Item item = pop();
  if (item.kind != Item::Kind::value) {
    throw Error(str_cat("malformed pickle: ", what, " is the global ", item.global));
  }
  return std::move(item.value);
}

// A global inside a tuple is only ever a storage type: kept by name.
void Unpickler::push_tuple(std::vector<Item> items) {
  std::vector<c10::IValue> values;
  for (Item& item : items) {
    values.push_back(item.kind == Item::Kind::global ? c10::IValue(item.global)
                                                     : std::move(item.value));
  }
  stack_.push_back(value_item(c10::ivalue::Tuple::create(std::move(values))));
}

void Unpickler::set_items(std::vector<Item> items) {
  if (items.size() % 2 != 0) throw Error("malformed pickle: SETITEMS with an odd count");
  Item& dict = top();
  if (dict.kind != Item::Kind::value || !dict.value.isGenericDict()) {
    throw Error("malformed pickle: SETITEMS on something that is not a dict");
  }
  auto entries = dict.value.toGenericDict();
  for (std::size_t i = 0; i < items.size(); i += 2) {
    if (items[i].kind != Item::Kind::value || !items[i].value.isString()) {
      throw Error("a dictionary key that is not a string (not a state dict)");
    }
    entries.insert_or_assign(items[i].value, items[i + 1].value);
  }
}

void Unpickler::memo_put(std::uint64_t index) { memo_[index] = top(); }

void Unpickler::memo_get(std::uint64_t index) {
  const auto found = memo_.find(index);
  if (found == memo_.end()) throw Error(str_cat("malformed pickle: memo ", index, " unset"));
  stack_.push_back(found->second);
}

// ('storage', <Type>Storage, key, location, numel): the record data/<key>, read once.
void Unpickler::persistent_load() {
  const c10::IValue id = pop_value("a persistent id");
  if (!id.isTuple()) throw Error("malformed pickle: a persistent id that is not a tuple");
  const std::vector<c10::IValue> e = id.toTupleRef().elements().vec();
  if (e.size() != 5 || !e[0].isString() || e[0].toStringRef() != "storage" || !e[1].isString() ||
      !e[2].isString() || !e[4].isInt()) {
    throw Error("a persistent id that is not ('storage', type, key, location, numel)");
  }
  const at::ScalarType dtype = storage_dtype(e[1].toStringRef());
  const std::string& key = e[2].toStringRef();
  const std::int64_t numel = e[4].toInt();
  if (numel < 0 || numel > kMaxElements) throw Error(str_cat("storage ", key, ": numel ", numel));
  auto found = storages_.find(key);
  if (found == storages_.end()) found = storages_.emplace(key, storage_(key, dtype, numel)).first;
  if (found->second.scalar_type() != dtype || found->second.numel() != numel) {
    throw Error(str_cat("storage ", key, " is referenced with two types or sizes"));
  }
  stack_.push_back(value_item(found->second));
}

std::vector<std::int64_t> int_tuple(const c10::IValue& value, const char* what) {
  if (!value.isTuple()) throw Error(str_cat("a tensor's ", what, " is not a tuple"));
  std::vector<std::int64_t> ints;
  for (const c10::IValue& element : value.toTupleRef().elements()) {
    if (!element.isInt() || element.toInt() < 0) {
      throw Error(str_cat("a tensor's ", what, " holds something other than a count"));
    }
    ints.push_back(element.toInt());
  }
  return ints;
}

// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]): the view
// must lie inside its storage.
at::Tensor Unpickler::rebuild_tensor(const c10::ivalue::Tuple& args) {
  const std::vector<c10::IValue> e = args.elements().vec();
  if (e.size() < 4 || !e[0].isTensor() || !e[1].isInt()) {
    throw Error("_rebuild_tensor_v2 with arguments that are not (storage, offset, size, stride)");
  }
  const at::Tensor& storage = e[0].toTensor();
  const std::int64_t offset = e[1].toInt(), available = storage.numel();
  const std::vector<std::int64_t> size = int_tuple(e[2], "size");
  const std::vector<std::int64_t> stride = int_tuple(e[3], "stride");
  if (size.size() != stride.size()) throw Error("a tensor whose size and stride differ in rank");
  std::int64_t numel = 1;
  for (const std::int64_t n : size) {
    if (n > 0 && numel > kMaxElements / n) throw Error("a tensor too large to be real");
    numel *= n;
  }
  const auto outside = [&] {
    return Error(str_cat("a tensor view (offset ", offset, ") reaches outside its storage of ",
                         available, " elements"));
  };
  if (offset < 0 || offset > available) throw outside();
  std::int64_t last = offset;  // the last element the view touches
  for (std::size_t d = 0; numel > 0 && d < size.size(); ++d) {
    if (size[d] <= 1 || stride[d] == 0) continue;
    if (last >= available || (size[d] - 1) > (available - 1 - last) / stride[d]) throw outside();
    last += (size[d] - 1) * stride[d];
  }
  if (numel > 0 && last >= available) throw outside();
  if (numel > std::max(available, kMaxBroadcast)) {
    throw Error(str_cat("a tensor of ", numel, " elements on a storage of ", available));
  }
  return storage.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
}

void Unpickler::reduce() {
  const c10::IValue args = pop_value("REDUCE's arguments");
  const Item callable = pop();
  if (callable.kind != Item::Kind::global || !args.isTuple()) {
    throw Error("malformed pickle: REDUCE without a global and a tuple");
  }
  const auto& arguments = args.toTupleRef();
  if (callable.global == "collections.OrderedDict" && arguments.elements().empty()) {
    stack_.push_back(value_item(c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get())));
  } else if (callable.global == "torch._utils._rebuild_tensor_v2") {
    stack_.push_back(value_item(rebuild_tensor(arguments)));
  } else if (callable.global == "torch._utils._rebuild_parameter" &&
             !arguments.elements().empty() && arguments.elements()[0].isTensor()) {
    stack_.push_back(value_item(arguments.elements()[0]));
  } else {
    throw Error(str_cat("it holds a ", callable.global,
                        ", which is not part of a state dict (a TorchScript module, or a pickled "
                        "Python object?)"));
  }
}

// An OrderedDict's instance attributes (state_dict()'s _metadata): not weights, dropped.
void Unpickler::build() {
  pop_value("BUILD's state");
  const Item& object = top();
  if (object.kind != Item::Kind::value || !object.value.isGenericDict()) {
    throw Error("it sets the state of an object that is not a dict (a pickled Python object?)");
  }
}

void Unpickler::step(std::uint8_t op) {
  switch (op) {
    case 0x80:  // PROTO
      take(1);
      break;
    case 0x95:  // FRAME
      take(8);
      break;
    case '(':  // MARK
      marks_.push_back(stack_.size());
      break;
    case '.':  // STOP
      stopped_ = true;
      break;
    case '0':  // POP
      pop();
      break;
    case '1':  // POP_MARK
      pop_to_mark();
      break;
    case '2': {  // DUP
      Item copy = top();
      stack_.push_back(std::move(copy));
      break;
    }
    case 'N':  // NONE
      stack_.push_back(value_item({}));
      break;
    case 0x88:  // NEWTRUE
      stack_.push_back(value_item(true));
      break;
    case 0x89:  // NEWFALSE
      stack_.push_back(value_item(false));
      break;
    case 'K':  // BININT1
      stack_.push_back(value_item(static_cast<std::int64_t>(little_endian(1))));
      break;
    case 'M':  // BININT2
      stack_.push_back(value_item(static_cast<std::int64_t>(little_endian(2))));
      break;
    case 'J':  // BININT
      stack_.push_back(value_item(std::int64_t{static_cast<std::int32_t>(little_endian(4))}));
      break;
    case 0x8a: {  // LONG1: a little-endian two's complement integer of n bytes
      const std::size_t n = static_cast<std::uint8_t>(take(1)[0]);
      if (n > 8) throw Error("an integer wider than 64 bits");
      std::uint64_t bits = little_endian(n);
      if (n > 0 && n < 8 && (bits >> (8 * n - 1)) & 1) bits |= ~std::uint64_t{0} << (8 * n);
      stack_.push_back(value_item(static_cast<std::int64_t>(bits)));
      break;
    }
    case 'G': {  // BINFLOAT: big-endian IEEE double
      const std::string_view bytes = take(8);
      std::uint64_t bits = 0;
      for (char c : bytes) bits = (bits << 8) | static_cast<std::uint8_t>(c);
      double value;
      std::memcpy(&value, &bits, sizeof value);
      stack_.push_back(value_item(value));
      break;
    }
    case 'X':  // BINUNICODE
      stack_.push_back(value_item(std::string(take(little_endian(4)))));
      break;
    case 0x8c:  // SHORT_BINUNICODE
      stack_.push_back(value_item(std::string(take(little_endian(1)))));
      break;
    case 0x8d:  // BINUNICODE8
      stack_.push_back(value_item(std::string(take(little_endian(8)))));
      break;
    case 'c': {  // GLOBAL module\nname\n
      std::string module = line();
      stack_.push_back(Item{Item::Kind::global, {}, module + "." + line()});
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      const c10::IValue name = pop_value("a global's name"), module = pop_value("a module");
      if (!name.isString() || !module.isString()) throw Error("a global named by non-strings");
      stack_.push_back(
          Item{Item::Kind::global, {}, module.toStringRef() + "." + name.toStringRef()});
      break;
    }
    case ')':  // EMPTY_TUPLE
      push_tuple({});
      break;
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
      std::vector<Item> items(op - 0x84);
      for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
      push_tuple(std::move(items));
      break;
    }
    case 't':  // TUPLE
      push_tuple(pop_to_mark());
      break;
    case '}':  // EMPTY_DICT
      stack_.push_back(
          value_item(c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get())));
      break;
    case 's': {  // SETITEM
      Item value = pop(), key = pop();
      set_items({std::move(key), std::move(value)});
      break;
    }
    case 'u':  // SETITEMS
      set_items(pop_to_mark());
      break;
    case 'q':  // BINPUT
      memo_put(little_endian(1));
      break;
    case 'r':  // LONG_BINPUT
      memo_put(little_endian(4));
      break;
    case 0x94:  // MEMOIZE
      memo_put(memo_.size());
      break;
    case 'h':  // BINGET
      memo_get(little_endian(1));
      break;
    case 'j':  // LONG_BINGET
      memo_get(little_endian(4));
      break;
    case 'Q':  // BINPERSID
      persistent_load();
      break;
    case 'R':  // REDUCE
      reduce();
      break;
    case 'b':  // BUILD
      build();
      break;
    default:
      throw Error(str_cat("unsupported pickle opcode 0x", std::hex, int{op}, std::dec, " at byte ",
                          at_ - 1, " (not a state dict torch.save wrote?)"));
  }
}

c10::IValue Unpickler::run() {
  while (!stopped_) step(static_cast<std::uint8_t>(take(1)[0]));
  if (stack_.size() != 1 || !marks_.empty() || stack_[0].kind != Item::Kind::value) {
    throw Error("malformed pickle: it does not end with one value");
  }
  return stack_[0].value;
}

std::string kind_of(const c10::IValue& value) {
  if (value.isGenericDict()) return "dictionary";
  if (value.isTuple()) return "tuple";
  return value.tagKind();
}

StateDict entries_of(const c10::IValue& root) {
  if (!root.isGenericDict()) {
    throw Error(str_cat("it holds a ", kind_of(root), ", not a dictionary of tensors"));
  }
  StateDict entries;
  for (const auto& entry : root.toGenericDict()) {
    const std::string& name = entry.key().toStringRef();
    if (!entry.value().isTensor()) {
      throw Error(str_cat(
          "entry '", name, "' is a ", kind_of(entry.value()),
          ", not a tensor: save the model's state_dict() itself, not a dictionary holding it"));
    }
    entries.emplace_back(name, entry.value().toTensor());
  }
  return entries;
}

StateDict read_archive(caffe2::serialize::PyTorchStreamReader& reader) {
  if (reader.hasRecord("byteorder")) {
    const auto [data, size] = reader.getRecord("byteorder");
    const std::string order(static_cast<const char*>(data.get()), size);
    if (order != "little") throw Error(str_cat("its tensors are ", order, "-endian"));
  }
  if (!reader.hasRecord("data.pkl")) {
    throw Error(str_cat("no data.pkl in the archive", reader.hasRecord("constants.pkl")
                                                          ? " (a TorchScript module: save "
                                                            "module.state_dict() instead)"
                                                          : ""));
  }
  const auto [pickle, pickle_size] = reader.getRecord("data.pkl");
  Unpickler unpickler(std::string_view(static_cast<const char*>(pickle.get()), pickle_size),
                      [&](const std::string& key, at::ScalarType dtype, std::int64_t numel) {
                        const std::string record = "data/" + key;
                        if (!reader.hasRecord(record))
                          throw Error(str_cat("storage record ", record, " missing"));
                        const auto [bytes, size] = reader.getRecord(record);
                        const std::size_t expected =
                            static_cast<std::size_t>(numel) * c10::elementSize(dtype);
                        if (size != expected) {
                          throw Error(str_cat("storage record ", record, " has ", size,
                                              " bytes, expected ", expected));
                        }
                        at::Tensor storage = at::empty({numel}, at::TensorOptions().dtype(dtype));
                        if (size > 0) std::memcpy(storage.data_ptr(), bytes.get(), size);
                        return storage;
                      });
  return entries_of(unpickler.run());
}

}  // namespace

StateDict read_state_dict(const std::string& path) {
  try {
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
    try {
      reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    } catch (const c10::Error& e) {
      throw Error(str_cat("not a zip archive torch.save wrote (", e.what_without_backtrace(),
                          "); the legacy format of _use_new_zipfile_serialization=False is not "
                          "read"));
    }
    return read_archive(*reader);
  } catch (const c10::Error& e) {
    throw Error(str_cat(path, ": ", e.what_without_backtrace()));
  } catch (const Error& e) {
    throw Error(str_cat(path, ": ", e.what()));
  }
}

}  // namespace braid
