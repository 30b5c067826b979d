#pragma once
// The data-parallel process group: torch's c10d, never a collective layer of our own. Rank 0
// serves a TCPStore at MASTER_ADDR:MASTER_PORT for the rendezvous; the ranks then form a Gloo
// process group (CPU tensors). Every call is bounded by the timeout given at connect: a rank that
// never comes, or leaves, turns into an Error on the others, not a hang.
#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dist/launch_env.h"

namespace rewardgen {

class Logger;

// True when this build has torch's Gloo process group (its headers were found at configure time).
bool have_gloo();

class Collective {
 public:
  // Error naming the address, the rank and the timeout when the rendezvous fails; Error when this
  // build has no Gloo.
  static std::unique_ptr<Collective> connect(const LaunchEnv& env, std::chrono::milliseconds timeout);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // In place: each tensor becomes its mean over the ranks. Tensors of one dtype travel flattened
  // into one buffer (one all-reduce per dtype, not one per tensor). CPU tensors.
  void all_reduce_mean(const std::vector<at::Tensor>& tensors);
  // Every rank's `local` (the same shape and dtype on every rank) concatenated along dimension 0
  // in rank order: [size · n, ...]. CPU tensors.
  at::Tensor all_gather(const at::Tensor& local);
  // Every rank's `value` must equal rank 0's (a hash of the resolved config, say): otherwise an
  // Error on every rank naming `what` and the ranks that differ.
  void check_same(const std::string& what, const std::string& value);
  void barrier();

 private:
  struct Impl;
  Collective(std::unique_ptr<Impl> impl, int rank, int size);
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  int64_t checks_ = 0;  // check_same calls so far: each uses keys of its own in the store
};

// This process's place in a torchrun-style launch (the environment, read_launch_env): null when it
// runs alone; otherwise the process group, after every rank checked that it resolved the same
// `job` (a description of the command, its config and its output folder, compared by hash: a rank
// that differs is named in an error on every rank). `timeout` bounds every wait of the group.
std::unique_ptr<Collective> join_launch(const std::string& job, std::chrono::milliseconds timeout, const Logger& log);

}  // namespace rewardgen
