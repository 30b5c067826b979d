#include <algorithm>

#include "core/error.h"
#include "methods/lcd.h"
#include "methods/method.h"
#include "methods/r0.h"
#include "methods/refl.h"

namespace rewardgen {

namespace {

template <class Config, class Task>
MethodEntry entry(std::string name, std::string help, Config (*read)(ConfigReader&), Json (*to_json)(const Config&)) {
  MethodEntry e;
  e.name = std::move(name);
  e.help = std::move(help);
  e.resolve = [read, to_json](ConfigReader& reader) { return to_json(read(reader)); };
  e.trainer = [read](const Json& resolved) {
    ConfigReader reader(resolved, "config.json");
    return read(reader).trainer;
  };
  e.make = [read](const Json& resolved, const std::string& model_dir, const Logger& log) -> std::unique_ptr<MethodTask> {
    ConfigReader reader(resolved, "config.json");
    return std::make_unique<Task>(read(reader), model_dir, log);
  };
  return e;
}

}  // namespace

std::vector<MethodEntry> method_registry() {
  std::vector<MethodEntry> methods = {
      entry<R0Config, R0Task>("r0", "R0: regularized reward maximization into a K-step generator (R0+: intermediate_supervision)",
                              read_r0_config, r0_config_json),
      entry<LcdConfig, LcdTask>("lcd", "LCD: latent consistency distillation of the teacher into an LCM with a guidance embedding",
                                read_lcd_config, lcd_config_json),
      entry<ReflConfig, ReflTask>("refl", "direct reward backprop baselines: ReFL (variant refl) and DRaFT-K (variant draft)",
                                  read_refl_config, refl_config_json),
  };
  std::sort(methods.begin(), methods.end(), [](const MethodEntry& a, const MethodEntry& b) { return a.name < b.name; });
  return methods;
}

MethodEntry find_method(const std::string& name) {
  const std::vector<MethodEntry> methods = method_registry();
  for (const MethodEntry& m : methods)
    if (m.name == name) return m;
  std::string known;
  for (const MethodEntry& m : methods) known += (known.empty() ? "" : ", ") + m.name;
  throw Error(str("unknown method '", name, "' (known: ", known, ")"));
}

}  // namespace rewardgen
