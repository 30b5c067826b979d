// rewardgen inspect FILE.safetensors: the header as a table, with totals; the face of the validator.
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace rewardgen::cli {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return text;
}

void print_table(const SafetensorsFile& file) {
  std::vector<const TensorInfo*> rows;
  size_t name_width = 4;
  for (const TensorInfo& t : file.tensors()) {
    rows.push_back(&t);
    name_width = std::max(name_width, t.name.size());
  }
  std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::cout << file.label() << ": " << file.file_size() << " bytes, header " << file.header_size() << " bytes, "
            << rows.size() << " tensors\n";
  for (const auto& [key, value] : file.metadata()) std::cout << "  metadata " << key << " = " << value << '\n';
  std::printf("%-*s  %-5s  %-24s  %12s\n", static_cast<int>(name_width), "name", "dtype", "shape", "bytes");
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (elements, bytes)
  int64_t elements = 0;
  uint64_t bytes = 0;
  for (const TensorInfo* t : rows) {
    const std::string dtype = safetensors_dtype_name(t->dtype);
    std::printf("%-*s  %-5s  %-24s  %12llu\n", static_cast<int>(name_width), t->name.c_str(), dtype.c_str(),
                shape_text(t->shape).c_str(), static_cast<unsigned long long>(t->nbytes()));
    by_dtype[dtype].first += numel(t->shape);
    by_dtype[dtype].second += t->nbytes();
    elements += numel(t->shape);
    bytes += t->nbytes();
  }
  std::cout << "total: " << rows.size() << " tensors, " << elements << " elements, " << bytes << " bytes ("
            << human_bytes(static_cast<double>(bytes)) << ")\n";
  for (const auto& [dtype, totals] : by_dtype)
    std::cout << "  " << dtype << ": " << totals.first << " elements, " << human_bytes(static_cast<double>(totals.second))
              << '\n';
}

void print_json(const SafetensorsFile& file) {
  nlohmann::ordered_json out;
  out["file"] = file.label();
  out["file_size"] = file.file_size();
  out["header_size"] = file.header_size();
  out["metadata"] = file.metadata();
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const TensorInfo& t : file.tensors())
    tensors.push_back({{"name", t.name},
                       {"dtype", safetensors_dtype_name(t.dtype)},
                       {"shape", t.shape},
                       {"data_offsets", {t.begin, t.end}}});
  out["tensors"] = tensors;
  std::cout << out.dump(2) << '\n';
}

}  // namespace

void add_inspect_command(CLI::App& app, Context& context, Commands& commands) {
  auto* sub = app.add_subcommand("inspect", "Validate a .safetensors file and print its tensors (name, dtype, shape, bytes)");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  sub->add_option("file", *path, "the .safetensors file")->required();
  sub->add_flag("--json", *as_json, "print the header as JSON instead of a table");
  commands.push_back({sub, [path, as_json] {
                        const SafetensorsFile file = SafetensorsFile::open(*path);
                        if (*as_json)
                          print_json(file);
                        else
                          print_table(file);
                      }});
}

}  // namespace rewardgen::cli
