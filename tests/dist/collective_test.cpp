// torch's c10d Gloo group between real processes on 127.0.0.1: the test spawns this binary twice as
// ranks 0 and 1 of a torchrun-style launch (DistWorker.Run, skipped unless REWARDGEN_DIST_WORKER
// names a scenario), and checks what each reported. The all-reduce averages, the config check names
// the rank that differs on every rank, and a rank that never comes is an error within the timeout.
#include "dist/collective.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "dist/spawn_ranks.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;

// Runs `scenario` as ranks 0..world-1 of one launch; each writes its report to <dir>/rank<R>.txt.
// Returns each rank's exit status (-1: killed at the deadline).
std::vector<int> launch(const std::string& scenario, int world, const std::string& dir, std::chrono::seconds deadline) {
  return testing::wait_ranks(testing::spawn_ranks("DistWorker.Run", world, dir, {"REWARDGEN_DIST_WORKER=" + scenario}), deadline);
}

std::string report(const std::string& dir, int rank) { return testing::rank_report(dir, rank); }

TEST(Collective, TwoProcessesAverageAndCompare) {
  if (!have_gloo()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  const std::vector<int> status = launch("reduce", 2, dir.path(), std::chrono::seconds(120));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(status[r], 0) << "rank " << r;
    EXPECT_EQ(report(dir.path(), r), "ok") << "rank " << r;
  }
}

TEST(Collective, ARankThatNeverComesIsAnErrorNotAHang) {
  if (!have_gloo()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> status = launch("absent", 2, dir.path(), std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(status[0], 0);
  EXPECT_EQ(report(dir.path(), 0), "ok");
  EXPECT_LT(seconds, 45.0);
}

TEST(Collective, WithoutALaunchNoGroupIsFormedAndOneProcessNeedsNone) {
  EXPECT_FALSE(read_launch_env([](const char*) -> const char* { return nullptr; }).distributed());
  if (have_gloo()) GTEST_SKIP() << "this build has Gloo";
  LaunchEnv env;
  env.world_size = 2;
  EXPECT_TRUE(testing::throws_error_containing([&] { Collective::connect(env, std::chrono::seconds(1)); }, "has no Gloo"));
}

// One rank of a launch above. Its report: "ok", or what went wrong.
TEST(DistWorker, Run) {
  const char* scenario = std::getenv("REWARDGEN_DIST_WORKER");
  if (scenario == nullptr) GTEST_SKIP() << "runs as a rank of the Collective tests only";
  const LaunchEnv env = read_launch_env();
  std::ofstream out(std::getenv("REWARDGEN_DIST_REPORT"));
  std::ostringstream problems;
  if (std::string(scenario) == "reduce") {
    const std::unique_ptr<Collective> group = Collective::connect(env, std::chrono::seconds(60));
    const int r = group->rank(), n = group->size();
    at::Tensor a = at::full({3}, static_cast<float>(r + 1));
    at::Tensor b = at::arange(4, at::kDouble) * (r + 1);
    at::Tensor c = at::full({2, 2}, static_cast<float>(r));
    group->all_reduce_mean({a, b, c});
    const double mean = (n + 1) / 2.0;  // mean of 1..n
    if (!at::allclose(a, at::full({3}, mean))) problems << "a " << a << "; ";
    if (!at::allclose(b, at::arange(4, at::kDouble) * mean)) problems << "b " << b << "; ";
    if (!at::allclose(c, at::full({2, 2}, (n - 1) / 2.0))) problems << "c " << c << "; ";
    // The gather: every rank's rows in rank order, for a float and an integer tensor.
    const at::Tensor gathered = group->all_gather(at::full({2, 3}, static_cast<float>(r)));
    const at::Tensor expected = at::arange(n, at::kFloat).repeat_interleave(2).unsqueeze(1).expand({2 * n, 3});
    if (!at::equal(gathered, expected)) problems << "gather " << gathered << "; ";
    const at::Tensor ids = group->all_gather(at::arange(3, at::kLong) + 10 * r);
    if (!at::equal(ids, (at::arange(3, at::kLong).repeat({n}) + 10 * at::arange(n, at::kLong).repeat_interleave(3))))
      problems << "gather ids " << ids << "; ";
    group->check_same("the config", "one config");  // equal everywhere: no error
    try {
      group->check_same("the seed", std::to_string(r));
      problems << "a differing value passed the check; ";
    } catch (const Error& e) {
      if (std::string(e.what()).find("the seed differs between the ranks: rank(s) 1 against rank 0") == std::string::npos)
        problems << "message: " << e.what() << "; ";
    }
    group->barrier();
  } else if (std::string(scenario) == "absent") {
    if (env.rank != 0) return;  // this rank never comes
    try {
      Collective::connect(env, std::chrono::seconds(3));
      problems << "the rendezvous succeeded without rank 1";
    } catch (const Error& e) {
      if (std::string(e.what()).find("data-parallel rendezvous failed (rank 0 of 2 at 127.0.0.1:") == std::string::npos)
        problems << "message: " << e.what();
    }
  }
  out << (problems.str().empty() ? "ok" : problems.str());
  EXPECT_EQ(problems.str(), "");
}

}  // namespace
}  // namespace rewardgen
