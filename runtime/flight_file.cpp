#include "runtime/flight_file.h"

#include <fmt/core.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "runtime/durable_file.h"

namespace braid {

namespace {

using nlohmann::json;

json to_json(const FlightRecord& r) {
  json j = {{"seq", r.seq},
            {"op", r.op},
            {"algorithm", r.algorithm},
            {"count", r.count},
            {"dtype", dtype_name(r.dtype)},
            {"bytes", r.count * static_cast<std::int64_t>(dtype_size(r.dtype))},
            {"state", op_state_name(r.state)},
            {"queued_us", r.queued_us},
            {"started_us", r.started_us},
            {"ended_us", r.ended_us}};
  if (r.root >= 0) j["root"] = r.root;
  if (r.waiting_for >= 0) j["waiting_for"] = r.waiting_for;
  if (r.stalled) j["stalled"] = true;
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

OpState state_of(const std::string& name) {
  for (OpState s : {OpState::kQueued, OpState::kStarted, OpState::kCompleted, OpState::kFailed}) {
    if (name == op_state_name(s)) return s;
  }
  throw ConfigError(str_cat("unknown state '", name, "'"));
}

FlightRecord record_from(const json& j, int channel) {
  FlightRecord r;
  r.channel = channel;
  r.seq = j.at("seq").get<std::uint64_t>();
  r.op = j.at("op").get<std::string>();
  r.algorithm = j.at("algorithm").get<std::string>();
  r.count = j.at("count").get<std::int64_t>();
  r.dtype = parse_dtype(j.at("dtype").get<std::string>());
  r.state = state_of(j.at("state").get<std::string>());
  r.queued_us = j.at("queued_us").get<std::int64_t>();
  r.started_us = j.at("started_us").get<std::int64_t>();
  r.ended_us = j.at("ended_us").get<std::int64_t>();
  r.root = j.value("root", -1);
  r.waiting_for = j.value("waiting_for", -1);
  r.stalled = j.value("stalled", false);
  r.error = j.value("error", std::string());
  return r;
}

}  // namespace

std::filesystem::path flight_file_path(const std::filesystem::path& run_dir, int rank) {
  return run_dir / "flight" / fmt::format("rank-{:05d}.json", rank);
}

void write_flight_file(const std::filesystem::path& path, const FlightFile& file) {
  json channels = json::array();
  for (const FlightChannel& c : file.channels) {
    json records = json::array();
    for (const FlightRecord& r : c.records) records.push_back(to_json(r));
    channels.push_back({{"id", c.id}, {"name", c.name}, {"records", std::move(records)}});
  }
  const json j = {{"format", "braid-flight-1"},
                  {"rank", file.rank},
                  {"world", file.world},
                  {"host", file.host},
                  {"pid", file.pid},
                  {"reason", file.reason},
                  {"written_us", file.written_us},
                  {"hosts", file.hosts},
                  {"ranks_per_node", file.ranks_per_node},
                  {"channels", std::move(channels)}};
  std::filesystem::create_directories(path.parent_path());
  // Invalid UTF-8 in an error message must not make the record unwritable.
  write_durably(path, j.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

FlightFile read_flight_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(str_cat("cannot read flight record '", path.string(), "'"));
  try {
    const json j = json::parse(in);
    if (j.value("format", std::string()) != "braid-flight-1") {
      throw ConfigError("not a braid flight record (format is not braid-flight-1)");
    }
    FlightFile file;
    file.rank = j.at("rank").get<int>();
    file.world = j.at("world").get<int>();
    if (file.world < 1 || file.rank < 0 || file.rank >= file.world) {
      throw ConfigError(str_cat("rank ", file.rank, " of a ", file.world, "-rank job"));
    }
    file.host = j.at("host").get<std::string>();
    file.pid = j.at("pid").get<std::int64_t>();
    file.reason = j.at("reason").get<std::string>();
    file.written_us = j.at("written_us").get<std::int64_t>();
    file.hosts = j.at("hosts").get<std::vector<std::string>>();
    file.ranks_per_node = j.at("ranks_per_node").get<int>();
    for (const json& c : j.at("channels")) {
      FlightChannel channel;
      channel.id = c.at("id").get<int>();
      channel.name = c.at("name").get<std::string>();
      for (const json& r : c.at("records")) channel.records.push_back(record_from(r, channel.id));
      file.channels.push_back(std::move(channel));
    }
    return file;
  } catch (const json::exception& e) {
    throw ConfigError(str_cat("flight record '", path.string(), "' is malformed: ", e.what()));
  } catch (const ConfigError& e) {
    throw ConfigError(str_cat("flight record '", path.string(), "': ", e.what()));
  }
}

}  // namespace braid
