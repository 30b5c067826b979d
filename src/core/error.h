#pragma once
// The one error type of rewardgen: a readable message for the user, naming the file, key, tensor
// or value at fault. `main` prints it and exits 1; nothing in the library calls exit().
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rewardgen {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates anything streamable: str("tensor '", name, "' has ", n, " bytes").
template <class... Parts>
std::string str(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

}  // namespace rewardgen
