// torch's c10d Gloo group between real processes on 127.0.0.1: the test spawns this binary twice as
// ranks 0 and 1 of a torchrun-style launch (DistWorker.Run, skipped unless REWARDGEN_DIST_WORKER
// names a scenario), and checks what each reported. The all-reduce averages, the config check names
// the rank that differs on every rank, and a rank that never comes is an error within the timeout.
#include "dist/collective.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "test_util.h"

extern char** environ;

namespace rewardgen {
namespace {

using testing::TempDir;

// A port free right now on 127.0.0.1 (the kernel's choice for a bound-then-closed socket).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw Error("cannot find a free port on 127.0.0.1");
  close(fd);
  return ntohs(address.sin_port);
}

// Runs `scenario` as ranks 0..world-1 of one launch; each writes its report to <dir>/rank<R>.txt.
// Returns each rank's exit status (-1: killed at the deadline).
std::vector<int> launch(const std::string& scenario, int world, const std::string& dir, std::chrono::seconds deadline) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string var = *e;
      if (var.rfind("RANK=", 0) != 0 && var.rfind("WORLD_SIZE=", 0) != 0 && var.rfind("LOCAL_RANK=", 0) != 0 &&
          var.rfind("MASTER_", 0) != 0)
        env.push_back(var);
    }
    for (const std::string& var : {str("RANK=", rank), str("WORLD_SIZE=", world), str("LOCAL_RANK=", rank), std::string("MASTER_ADDR=127.0.0.1"),
                                   str("MASTER_PORT=", port), "REWARDGEN_DIST_WORKER=" + scenario,
                                   str("REWARDGEN_DIST_REPORT=", dir, "/rank", rank, ".txt")})
      env.push_back(var);
    std::vector<char*> envp;
    for (std::string& var : env) envp.push_back(var.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--gtest_filter=DistWorker.Run";
    char* argv[] = {exe.data(), filter.data(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) != 0) throw Error("cannot spawn a worker");
    pids.push_back(pid);
  }
  std::vector<int> status(world, -2);
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (int left = world; left > 0 && std::chrono::steady_clock::now() < end;) {
    for (int r = 0; r < world; ++r) {
      int s = 0;
      if (status[r] == -2 && waitpid(pids[r], &s, WNOHANG) == pids[r]) {
        status[r] = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int r = 0; r < world; ++r)
    if (status[r] == -2) {
      kill(pids[r], SIGKILL);
      waitpid(pids[r], nullptr, 0);
      status[r] = -1;
    }
  return status;
}

std::string report(const std::string& dir, int rank) {
  std::ifstream in(str(dir, "/rank", rank, ".txt"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

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
