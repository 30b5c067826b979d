#pragma once
// Files that appear whole or not at all: write to a temporary file beside the target, fsync it,
// rename it over the target, fsync the directory. A writer destroyed before commit() removes its
// temporary file, so an interrupted save leaves the previous version intact.
#include <cstddef>
#include <string>

namespace rewardgen {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);  // creates "<path>.tmp.<pid>.<n>"; throws Error
  ~AtomicFileWriter();                          // removes the temporary file unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);    // throws Error naming the file (disk full, ...)
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit();                                // fsync + rename + fsync(dir)

  const std::string& path() const { return path_; }
  size_t bytes_written() const { return bytes_written_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  size_t bytes_written_ = 0;
  bool committed_ = false;
};

// Throws Error unless `path` names a regular file (or a link to one): a FIFO, device or folder given
// where a file is read would block forever or read garbage. Every reader calls it before opening.
void require_regular_file(const std::string& path);

// Whole-file helpers.
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_text_file(const std::string& path);  // a regular file; throws Error naming it
// Copies the regular files of folder `from` into `to` (created), each through write_file_atomic,
// so that a reader never sees a half-copied file. Nothing is done when both name the same folder.
void copy_folder_files(const std::string& from, const std::string& to);

}  // namespace rewardgen
