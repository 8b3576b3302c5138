#pragma once
// The few POSIX file operations batches need: read a whole file, write all
// of a buffer, and replace a file atomically (temp file, fsync, rename,
// fsync of the directory). Linux.

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace jobpoll::detail {

/// A file descriptor, closed when destroyed.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }

  /// Closes it now: 0, or -1 with errno set (the descriptor is released either way).
  int close() noexcept { return ::close(std::exchange(fd_, -1)); }

 private:
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

/// `result` unless it is negative; then throws `std::system_error` with
/// errno's code and `message()` (errno is read before `message` runs).
template <class Message>
auto posix_check(auto result, const Message& message) {
  if (result < 0) {
    const int error = errno;
    throw std::system_error(error, std::system_category(), message());
  }
  return result;
}

/// Writes all of `data` to `fd`, resuming after partial writes and EINTR.
/// `written` counts the bytes written, also when it throws (errno's code
/// and `message()`).
template <class Message>
void write_all(int fd, std::string_view data, std::size_t& written, const Message& message) {
  written = 0;
  while (written < data.size()) {
    const auto n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    written += static_cast<std::size_t>(posix_check(n, message));
  }
}

/// The whole content of `path`, or none when it does not exist (ENOENT) and
/// `missing_ok`. Throws `std::system_error` with errno's code and
/// "<what> <path>" when it cannot be opened or read.
inline std::optional<std::string> read_file(const std::filesystem::path& path, bool missing_ok, std::string_view what) {
  const auto message = [&] { return std::string(what) + " " + path.string(); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && missing_ok) return std::nullopt;
  const unique_fd file(posix_check(fd, message));
  struct stat info {};
  posix_check(::fstat(file.get(), &info), message);
  std::string text;
  if (info.st_size > 0) text.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[65536];
  for (;;) {
    const auto n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (posix_check(n, message) == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

/// Replaces `path` by a file holding `text`, atomically: writes
/// "<path>.tmp", fsyncs and closes it, renames it over `path`, fsyncs the
/// directory. A failure before the rename removes the temp file it created
/// and leaves `path` as it was; `what` starts every message, then the step
/// and the file ("<what>: writing <path>.tmp: <errno's text>").
inline void replace_file(const std::filesystem::path& path, std::string_view text, const std::string& what) {
  std::filesystem::path temp = path;
  temp += ".tmp";
  const auto step = [&](std::string_view verb, const std::filesystem::path& file) {
    return [&what, verb, &file] { return what + ": " + std::string(verb) + " " + file.string(); };
  };
  unique_fd file(
      posix_check(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666), step("creating", temp)));
  try {
    std::size_t written = 0;
    write_all(file.get(), text, written, step("writing", temp));
    posix_check(::fsync(file.get()), step("syncing", temp));
    posix_check(file.close(), step("closing", temp));
    posix_check(::rename(temp.c_str(), path.c_str()),
                [&] { return what + ": renaming " + temp.string() + " to " + path.string(); });
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  // The rename is durable only once the directory entry is on disk.
  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const unique_fd dir(posix_check(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                                  step("opening directory", directory)));
  posix_check(::fsync(dir.get()), step("syncing directory", directory));
}

}  // namespace jobpoll::detail
