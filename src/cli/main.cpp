// rewardgen: reward-centric post-training of text-to-image diffusion models into fast generators.
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/allocator.h"
#include "core/blas.h"
#include "core/libstdcxx.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/threads.h"
#include "core/version.h"
#include "models/cpu_kernels.h"
#include "models/onednn.h"

namespace {

std::string version_text() {
  return rewardgen::str("rewardgen ", rewardgen::kVersion, " (LibTorch ", TORCH_VERSION_MAJOR, ".",
                        TORCH_VERSION_MINOR, ".", TORCH_VERSION_PATCH,
                        torch::cuda::is_available() ? ", CUDA available" : ", CPU only", ")\nBLAS: ",
                        rewardgen::to_string(rewardgen::blas_info()),
                        "\nCPU kernels (attention, GEGLU): ", rewardgen::cpu_kernels::instruction_set(),
                        "\n3x3 convolutions: ", rewardgen::convolution_kernels());
}

int run(int argc, char** argv) {
  using namespace rewardgen;
  CLI::App app{"rewardgen: turn a pretrained text-to-image diffusion model into a fast (1-4 step) generator\n"
               "by reward-centric post-training, and measure the result.",
               "rewardgen"};
  app.set_version_flag("--version", version_text());
  cli::Context context;
  cli::Commands commands;
  std::string log_level;
  cli::build_app(app, context, commands, log_level);

  try {
    app.parse(argc, argv);
  } catch (const CLI::RequiredError& e) {
    // `rewardgen nope`: CLI11 would only say that a command is required; name the word it got.
    const std::vector<std::string> unknown = app.remaining();
    if (app.get_subcommands().empty() && !unknown.empty()) {
      std::cerr << "unknown command '" << unknown.front() << "'\n" << app.help();
      return 2;
    }
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const CLI::ParseError& e) {
    // app.exit prints the message: 0 for --help and --version; a bad command line exits with 2, the
    // usage-error code of POSIX tools (CLI11's own codes, 105 and up, would mean nothing to a script).
    return app.exit(e) == 0 ? 0 : 2;
  }
  context.log.set_level(parse_log_level(log_level));
  report_blas_core_choice(context.log);
  report_libstdcxx_preload(context.log);
  bool capped = false;
  const int threads = usable_threads(context.threads, hardware_cores(), &capped);
  if (capped)
    context.log.warn(str("--threads ", context.threads, " is more than this machine's ", hardware_cores(),
                         " cores (more threads would only contend): using ", threads));
  context.threads = set_threads(threads);
  for (const cli::Command& command : commands)
    if (command.app->parsed()) {
      command.run();
      return 0;
    }
  std::cerr << app.help();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  rewardgen::preload_libstdcxx_if_shadowed(argv);  // may re-execute with libstdc++ preloaded (core/libstdcxx.h)
  rewardgen::choose_blas_core(argv);  // may re-execute with a faster OpenBLAS kernel (core/blas.h)
  rewardgen::tune_allocator();  // large temporaries from the heap, not mmap (core/allocator.h)
  try {
    return run(argc, argv);
  } catch (const rewardgen::InterruptedError& e) {
    std::cerr << "interrupted: " << e.what() << '\n';
    return 128 + e.signal();  // the shell's convention for a process ended by a signal
  } catch (const rewardgen::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch's own messages carry a C++ backtrace; the first line is what a user needs.
    const std::string message = e.what_without_backtrace();
    std::cerr << "error (LibTorch): " << message.substr(0, message.find('\n')) << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
