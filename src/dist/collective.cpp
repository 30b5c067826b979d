#include "dist/collective.h"

#include <cstdlib>
#include <map>

#include "core/error.h"
#include "core/log.h"

#ifdef REWARDGEN_WITH_GLOO
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace rewardgen {

#ifdef REWARDGEN_WITH_GLOO

bool have_gloo() { return true; }

struct Collective::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout;
  std::string where;  // "rank R of N at ADDR:PORT", for messages
};

namespace {

// Loopback rendezvous (one node, the tests) binds Gloo to 127.0.0.1; otherwise GLOO_SOCKET_IFNAME
// names the interface, as in torch, else the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface != nullptr && *interface != '\0')
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (master_addr == "localhost" || master_addr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

std::unique_ptr<Collective> Collective::connect(const LaunchEnv& env, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->timeout = timeout;
  impl->where = str("rank ", env.rank, " of ", env.world_size, " at ", env.master_addr, ":", env.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    auto group_options = c10d::ProcessGroupGloo::Options::create(timeout);
    group_options->devices.push_back(gloo_device(env.master_addr));
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, group_options);
  } catch (const std::exception& e) {
    throw Error(str("data-parallel rendezvous failed (", impl->where, ", timeout ", timeout.count() / 1000.0, " s): ", e.what()));
  }
  return std::unique_ptr<Collective>(new Collective(std::move(impl), env.rank, env.world_size));
}

void Collective::all_reduce_mean(const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const at::Tensor& t : tensors) {
    if (!t.defined()) throw Error("all_reduce_mean: an undefined tensor");
    if (!t.device().is_cpu()) throw Error(str("all_reduce_mean: the Gloo group reduces CPU tensors, got one on ", t.device().str()));
    if (!t.is_floating_point()) throw Error(str("all_reduce_mean: a mean needs floating-point tensors, got ", t.scalar_type()));
    by_dtype[t.scalar_type()].push_back(t);
  }
  for (auto& [dtype, group] : by_dtype) {
    std::vector<at::Tensor> flat;
    for (const at::Tensor& t : group) flat.push_back(t.reshape({-1}));
    std::vector<at::Tensor> buffer{at::cat(flat)};
    try {
      impl_->group->allreduce(buffer)->wait(impl_->timeout);
    } catch (const std::exception& e) {
      throw Error(str("all-reduce failed (", impl_->where, "): ", e.what()));
    }
    buffer[0].div_(size_);
    int64_t offset = 0;
    for (const at::Tensor& t : group) {
      at::Tensor target = t;
      target.copy_(buffer[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

at::Tensor Collective::all_gather(const at::Tensor& local) {
  at::NoGradGuard no_grad;
  if (!local.defined() || local.dim() == 0) throw Error("all_gather: needs a tensor with a batch dimension");
  if (!local.device().is_cpu()) throw Error(str("all_gather: the Gloo group gathers CPU tensors, got one on ", local.device().str()));
  std::vector<at::Tensor> input{local.contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < size_; ++r) output[0].push_back(at::empty_like(input[0]));
  try {
    impl_->group->allgather(output, input)->wait(impl_->timeout);
  } catch (const std::exception& e) {
    throw Error(str("all-gather failed (", impl_->where, "): ", e.what()));
  }
  return at::cat(output[0]);
}

void Collective::check_same(const std::string& what, const std::string& value) {
  const std::string key = str("rewardgen/check/", checks_++, "/");
  auto as_bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  try {
    if (rank_ == 0) impl_->store->set(key + "value", as_bytes(value));
    const std::vector<uint8_t> first = impl_->store->get(key + "value");  // waits for rank 0, bounded by the store's timeout
    impl_->store->set(str(key, rank_), as_bytes(std::string(first.begin(), first.end()) == value ? "same" : "different"));
    std::string differ;
    for (int r = 0; r < size_; ++r) {
      const std::vector<uint8_t> verdict = impl_->store->get(str(key, r));
      if (std::string(verdict.begin(), verdict.end()) != "same") differ += (differ.empty() ? "" : ", ") + std::to_string(r);
    }
    if (!differ.empty()) throw Error(str(what, " differs between the ranks: rank(s) ", differ, " against rank 0 (", impl_->where, ")"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(str("comparing ", what, " across the ranks failed (", impl_->where, "): ", e.what()));
  }
}

void Collective::barrier() {
  try {
    impl_->group->barrier()->wait(impl_->timeout);
  } catch (const std::exception& e) {
    throw Error(str("barrier failed (", impl_->where, "): ", e.what()));
  }
}

#else  // no Gloo in this build

bool have_gloo() { return false; }

struct Collective::Impl {};

std::unique_ptr<Collective> Collective::connect(const LaunchEnv& env, std::chrono::milliseconds) {
  throw Error(str("this build of rewardgen has no Gloo (torch's c10d headers or gloo's were not found at configure time: "
                  "install libgloo-dev, or use a LibTorch that ships them), so it cannot join a launch of ", env.world_size,
                  " processes"));
}
// Unreachable: without Gloo, connect() refuses and no Collective exists.
void Collective::all_reduce_mean(const std::vector<at::Tensor>&) {}
at::Tensor Collective::all_gather(const at::Tensor& local) { return local; }
void Collective::check_same(const std::string&, const std::string&) {}
void Collective::barrier() {}

#endif

Collective::Collective(std::unique_ptr<Impl> impl, int rank, int size) : impl_(std::move(impl)), rank_(rank), size_(size) {}
Collective::~Collective() = default;

std::unique_ptr<Collective> join_launch(const std::string& job, std::chrono::milliseconds timeout, const Logger& log) {
  const LaunchEnv launch = read_launch_env();
  if (!launch.distributed()) return nullptr;
  std::unique_ptr<Collective> collective = Collective::connect(launch, timeout);
  collective->check_same("the job (command, config, output folder)", std::to_string(std::hash<std::string>{}(job)));
  if (launch.rank == 0)
    log.info(str("data-parallel over ", launch.world_size, " processes (c10d Gloo, rendezvous at ", launch.master_addr, ":",
                 launch.master_port, "): each trains on its shard of every batch"));
  return collective;
}

}  // namespace rewardgen
