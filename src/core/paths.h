#pragma once
// Where the files the project ships live (tokenizer vocabularies, the embedded world's models).
#include <string>

namespace rewardgen {

// $REWARDGEN_DATA_DIR when set, else the data/ folder of the source tree this binary was built from.
std::string data_dir();
// data_dir() + "/" + relative; throws Error naming both places when the file does not exist.
std::string shipped_file(const std::string& relative);

}  // namespace rewardgen
