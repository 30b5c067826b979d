// rewardgen bench speed: the UNet rows of docs/performance.md in one run, ours in fp32 (and bf16
// where the CPU has it) and, when a diffusers timing script is given, diffusers' fp32 beside them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/format.h"
#include "core/version.h"
#include "eval/speed_suite.h"

namespace rewardgen::cli {
namespace {

struct SpeedArgs {
  std::string configs = kSourceBenchConfigsDir, diffusers_timer;
  std::vector<std::string> rows{"world", "fifth", "sd15"};
  std::vector<std::string> precisions{"fp32", "auto"};
  int repeats = 3, rounds = 1;
};

// A forward and a training step, accumulated over the rounds: ours per precision, diffusers' per row.
struct PassTimes {
  RoundTimes forward, train_step;
};

std::string seconds(double s) { return s > 0 ? fixed_digits(s, 3) : std::string("–"); }

// "mean / best" of a time, or of a ratio of two programs' times.
std::string mean_best(double mean_s, double best_s) { return seconds(mean_s) + " / " + seconds(best_s); }

std::string ratio(double ours, double theirs) { return ours > 0 && theirs > 0 ? fixed_digits(ours / theirs, 2) : std::string("–"); }

std::string ratios(double ours_mean, double ours_best, double theirs_mean, double theirs_best) {
  return ratio(ours_mean, theirs_mean) + " / " + ratio(ours_best, theirs_best);
}

void run_speed(const SpeedArgs& a, const Context& context) {
  std::vector<SpeedRow> rows;
  for (const std::string& key : a.rows)
    for (const SpeedRow& row : speed_rows(a.configs))
      if (row.key == key) rows.push_back(row);
  std::vector<Precision> precisions;
  for (const std::string& p : a.precisions) {
    const Precision q = parse_precision(p, at::kCPU);
    if (std::find(precisions.begin(), precisions.end(), q) == precisions.end()) precisions.push_back(q);
  }
  std::vector<UNet2DConditionConfig> configs;  // every config read before any timing
  for (const SpeedRow& row : rows) configs.push_back(load_unet_config(row.config_file, context.log));
  std::printf("| row | precision | ours forward s | ours train step s | diffusers fp32 forward s | diffusers fp32 train step s "
              "| forward ours/diffusers | train ours/diffusers |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const SpeedRow& row = rows[i];
    std::vector<PassTimes> ours(precisions.size());
    PassTimes theirs;
    for (int round = 0; round < a.rounds; ++round) {  // theirs, then ours, each round
      if (!a.diffusers_timer.empty()) {
        const DiffusersTimes t = time_diffusers(a.diffusers_timer, row, context.threads, a.repeats, 1);
        theirs.forward.add(t.forward_s, t.forward_best_s);
        theirs.train_step.add(t.train_step_s, t.train_step_best_s);
      }
      for (size_t p = 0; p < precisions.size(); ++p) {
        UnetBenchOptions o;
        o.batch = row.batch;
        o.latent_size = row.latent_size;
        o.text_tokens = row.text_tokens;
        o.repeats = a.repeats;
        o.forward_only = !row.train;
        o.precision = precisions[p];
        const UnetBenchResult r = bench_unet(configs[i], o);
        ours[p].forward.add(r.forward_s, r.forward_best_s);
        ours[p].train_step.add(r.train_step_s, r.train_step_best_s);
      }
    }
    for (size_t p = 0; p < precisions.size(); ++p) {
      const PassTimes& c = ours[p];
      std::printf("| %s, batch %lld, %lldx%lld, %lld tokens | %s | %s | %s | %s | %s | %s | %s |\n", row.name.c_str(),
                  static_cast<long long>(row.batch), static_cast<long long>(row.latent_size),
                  static_cast<long long>(row.latent_size), static_cast<long long>(row.text_tokens),
                  to_string(precisions[p]).c_str(), mean_best(c.forward.mean_s(), c.forward.best_s()).c_str(),
                  mean_best(c.train_step.mean_s(), c.train_step.best_s()).c_str(),
                  mean_best(theirs.forward.mean_s(), theirs.forward.best_s()).c_str(),
                  mean_best(theirs.train_step.mean_s(), theirs.train_step.best_s()).c_str(),
                  ratios(c.forward.mean_s(), c.forward.best_s(), theirs.forward.mean_s(), theirs.forward.best_s()).c_str(),
                  ratios(c.train_step.mean_s(), c.train_step.best_s(), theirs.train_step.mean_s(),
                         theirs.train_step.best_s())
                      .c_str());
      std::fflush(stdout);
    }
  }
  const std::string diffusers_note = a.diffusers_timer.empty()
                                         ? "; no diffusers timing: set REWARDGEN_DIFFUSERS_TIMER or --diffusers"
                                         : "; diffusers under GLIBC_TUNABLES=" + allocator_tunables() + ", as ours";
  const std::string rounds_note =
      a.rounds > 1 ? str(" in each of ", a.rounds, " rounds (diffusers', then ours, each round; the mean of the rounds' means, the best of all)")
                   : std::string();
  std::printf("(each cell: mean / best of %d timed repetitions%s, after one warm-up; %d threads%s)\n", a.repeats,
              rounds_note.c_str(), context.threads, diffusers_note.c_str());
}

}  // namespace

void add_speed_bench_command(CLI::App& bench, Context& context, Commands& commands) {
  auto a = std::make_shared<SpeedArgs>();
  if (const char* timer = std::getenv("REWARDGEN_DIFFUSERS_TIMER")) a->diffusers_timer = timer;
  auto* sub = bench.add_subcommand("speed", "The UNet speed table (docs/performance.md): ours in fp32/bf16 and diffusers' fp32, one run");
  sub->add_option("--configs", a->configs, "folder of the rows' UNet configs")->capture_default_str();
  sub->add_option("--rows", a->rows, "rows to time: world (teacher, b32 16x16), fifth (SD1.5 fifth width, b2 32x32), sd15 (b1 64x64, forward)")
      ->check(CLI::IsMember({"world", "fifth", "sd15"}))->capture_default_str();
  sub->add_option("--precision", a->precisions, "precisions of our rows: fp32, bf16, auto (bf16 where the CPU has AMX or AVX512-BF16)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}))->capture_default_str();
  sub->add_option("--repeats", a->repeats, "timed repetitions per figure, after one warm-up")->check(CLI::Range(1, 100))->capture_default_str();
  sub->add_option("--rounds", a->rounds,
                  "time each row this many times, diffusers' and ours alternating, and merge (mean of the means, best of all): "
                  "a noisy machine's slow minutes then fall on both sides")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  sub->add_option("--diffusers", a->diffusers_timer,
                  "diffusers timing script (../shared/tools/diffusers_baseline/time_unet.py; needs DIFFUSERS_GIT_DIR and "
                  "/usr/bin/python3 with torch); default: $REWARDGEN_DIFFUSERS_TIMER");
  commands.push_back({sub, [a, &context] { run_speed(*a, context); }});
}

}  // namespace rewardgen::cli
