#include <algorithm>

#include "core/error.h"
#include "methods/ddpo.h"
#include "methods/distar.h"
#include "methods/lcd.h"
#include "methods/method.h"
#include "methods/r0.h"
#include "methods/refl.h"
#include "methods/rlcm.h"

namespace rewardgen {

namespace {

template <class Config, class Task>
MethodEntry entry(std::string name, std::string help, Config (*read)(ConfigReader&), Json (*to_json)(const Config&),
                  std::string default_model = "") {
  MethodEntry e;
  e.name = std::move(name);
  e.help = std::move(help);
  e.default_model = std::move(default_model);
  e.resolve = [read, to_json](ConfigReader& reader) { return to_json(read(reader)); };
  e.trainer = [read](const Json& resolved) {
    ConfigReader reader(resolved, "config.json");
    return read(reader).trainer;
  };
  e.make = [read](const Json& resolved, const std::string& model_dir, const Logger& log,
                  const at::Device& device) -> std::unique_ptr<MethodTask> {
    ConfigReader reader(resolved, "config.json");
    return std::make_unique<Task>(read(reader), model_dir, log, device);
  };
  return e;
}

// DI* and its KL ablation share one config reader; the method name picks the regulariser.
DistarConfig read_distar(ConfigReader& reader) { return read_distar_config(reader, "score"); }
DistarConfig read_distar_kl(ConfigReader& reader) { return read_distar_config(reader, "kl"); }

}  // namespace

std::vector<MethodEntry> method_registry() {
  std::vector<MethodEntry> methods = {
      entry<R0Config, R0Task>("r0", "R0: regularized reward maximization into a K-step generator (R0+: intermediate_supervision)",
                              read_r0_config, r0_config_json),
      entry<LcdConfig, LcdTask>("lcd", "LCD: latent consistency distillation of the teacher into an LCM with a guidance embedding",
                                read_lcd_config, lcd_config_json),
      entry<DdpoConfig, DdpoTask>("ddpo", "DDPO: PPO on the teacher's DDIM sampler with CFG (the policy-gradient baseline)",
                                  read_ddpo_config, ddpo_config_json),
      entry<RlcmConfig, RlcmTask>("rlcm", "RLCM: PPO on a latent consistency model's multistep sampler (starts from models/world/lcm)",
                                  read_rlcm_config, rlcm_config_json, "lcm"),
      entry<DistarConfig, DistarTask>("distar",
                                      "DI*: a one-step generator by reward with a score divergence (SIM) to the teacher (starts "
                                      "from models/world/lcm)",
                                      read_distar, distar_config_json, "lcm"),
      entry<DistarConfig, DistarTask>("distar-kl", "DI*-KL: DI* with Diff-Instruct's integral-KL regulariser (the ablation)",
                                      read_distar_kl, distar_config_json, "lcm"),
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
