#pragma once
// A torchrun-style launch inside the tests: this test binary spawns itself as ranks 0..N-1 on
// 127.0.0.1 (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set, other launch variables
// removed), each running one worker test (`--gtest_filter`), which writes what it saw to
// <dir>/rank<R>.txt (REWARDGEN_DIST_REPORT).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

extern char** environ;

namespace rewardgen::testing {

// A port free right now on 127.0.0.1 (the kernel's choice for a bound-then-closed socket).
inline int free_port() {
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

// Starts ranks 0..world-1 of one launch running the worker test `worker` with `extra_env`
// ("NAME=value") added; returns their pids.
inline std::vector<pid_t> spawn_ranks(const std::string& worker, int world, const std::string& report_dir,
                                      const std::vector<std::string>& extra_env) {
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
    for (const std::string& var : {str("RANK=", rank), str("WORLD_SIZE=", world), str("LOCAL_RANK=", rank),
                                   std::string("MASTER_ADDR=127.0.0.1"), str("MASTER_PORT=", port),
                                   str("REWARDGEN_DIST_REPORT=", report_dir, "/rank", rank, ".txt")})
      env.push_back(var);
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (std::string& var : env) envp.push_back(var.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--gtest_filter=" + worker;
    char* argv[] = {exe.data(), filter.data(), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) != 0) throw Error("cannot spawn a worker");
    pids.push_back(pid);
  }
  return pids;
}

// Waits for every rank until `deadline`, calling `poll` (if any) between checks; each rank's exit
// status (128 + signal when killed; -1: still running at the deadline, then killed).
inline std::vector<int> wait_ranks(const std::vector<pid_t>& pids, std::chrono::seconds deadline,
                                   const std::function<void()>& poll = {}) {
  const size_t world = pids.size();
  std::vector<int> status(world, -2);
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (size_t left = world; left > 0 && std::chrono::steady_clock::now() < end;) {
    for (size_t r = 0; r < world; ++r) {
      int s = 0;
      if (status[r] == -2 && waitpid(pids[r], &s, WNOHANG) == pids[r]) {
        status[r] = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
        --left;
      }
    }
    if (poll) poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (size_t r = 0; r < world; ++r)
    if (status[r] == -2) {
      kill(pids[r], SIGKILL);
      waitpid(pids[r], nullptr, 0);
      status[r] = -1;
    }
  return status;
}

inline std::string rank_report(const std::string& dir, int rank) {
  std::ifstream in(str(dir, "/rank", rank, ".txt"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace rewardgen::testing
