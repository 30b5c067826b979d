#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rewardgen {
namespace {

std::string errno_text() { return std::strerror(errno); }

void fsync_directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  static std::atomic<unsigned> counter{0};  // distinct temp names for writers in one process
  temp_path_ = str(path_, ".tmp.", ::getpid(), '.', counter++);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(str("cannot create '", temp_path_, "' to write '", path_, "': ", errno_text()));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  if (committed_ || fd_ < 0) throw Error(str("write to '", path_, "' after it was committed"));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(str("cannot write '", temp_path_, "' (for '", path_, "'): ", errno_text()));
    }
    p += n;
    size -= static_cast<size_t>(n);
    bytes_written_ += static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (committed_) return;
  if (::fsync(fd_) != 0) throw Error(str("cannot fsync '", temp_path_, "': ", errno_text()));
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw Error(str("cannot close '", temp_path_, "': ", errno_text()));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw Error(str("cannot rename '", temp_path_, "' to '", path_, "': ", errno_text()));
  committed_ = true;
  fsync_directory_of(path_);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFileWriter writer(path);
  writer.write(contents);
  writer.commit();
}

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(str("cannot open '", path, "': ", errno_text()));
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
                   : (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? "a device" : "a special file";
  throw Error(str("cannot read '", path, "': it is ", kind, ", not a regular file"));
}

std::string read_text_file(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot open '", path, "': ", errno_text()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(str("cannot read '", path, "'"));
  return buffer.str();
}

void copy_folder_files(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) throw Error(str("cannot create '", to, "': ", ec.message()));
  if (fs::absolute(from) == fs::absolute(to)) return;
  for (const auto& entry : fs::directory_iterator(from))
    if (entry.is_regular_file()) write_file_atomic(to + "/" + entry.path().filename().string(), read_text_file(entry.path().string()));
}

}  // namespace rewardgen
