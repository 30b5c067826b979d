#pragma once
// Where this process sits in a data-parallel launch, read the way torchrun publishes it: RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Any launcher that sets them works; under Slurm,
// `srun` gives RANK=$SLURM_PROCID, WORLD_SIZE=$SLURM_NTASKS, LOCAL_RANK=$SLURM_LOCALID and the
// first node of $SLURM_JOB_NODELIST as MASTER_ADDR (docs/distributed.md).
#include <cstdint>
#include <functional>
#include <string>

namespace rewardgen {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;       // the process's index on its node (its GPU, cuda:LOCAL_RANK)
  std::string master_addr;  // where rank 0 serves the rendezvous store
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

// None of the variables set: one process. Otherwise RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
// are all required (LOCAL_RANK defaults to RANK), each range-checked: Error naming the variables
// missing, or the variable and its value. `lookup` returns a variable's value or null.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& lookup);
LaunchEnv read_launch_env();  // this process's environment

}  // namespace rewardgen
