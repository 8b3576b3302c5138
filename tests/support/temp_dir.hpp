#pragma once
// A fresh directory for one test's files, removed with everything in it when
// the test ends; whole-file reads and writes for asserting on the bytes the
// code under test wrote (or handing it bytes to read); and the error of an
// operation that must leave a file as it was.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

namespace jobpoll_test {

/// A new, empty directory under the system's temp directory, named `prefix`
/// and six random characters (so tests running at once never share one).
/// The constructor throws std::system_error naming the pattern if it cannot
/// be made; the destructor removes it and everything in it.
class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "jobpoll-test-") {
    std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    path_ = pattern;
  }
  ~temp_dir() {
    jobpoll::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// The path of `name` in this directory (which need not exist).
  std::filesystem::path operator/(const std::filesystem::path& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

  /// The names of the entries directly in it, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

/// The whole content of the file at `path`, byte for byte. Throws
/// std::runtime_error naming the path if it cannot be opened.
inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Replaces the content of the file at `path` (created if missing) with
/// `bytes`. Throws std::runtime_error naming the path if it cannot be written.
inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

/// The std::system_error that `operation` throws. A test failure, naming
/// `what`, if it throws none (then an error without a code is returned) or
/// if the bytes of the file at `path` differ afterwards.
inline std::system_error system_error_keeping(const std::filesystem::path& path, const std::string& what,
                                              const std::function<void()>& operation) {
  const std::string before = read_bytes(path);
  std::optional<std::system_error> caught;
  try {
    operation();
  } catch (const std::system_error& e) {
    caught = e;
  }
  EXPECT_EQ(read_bytes(path), before) << what << " changed the file";
  if (!caught) {
    ADD_FAILURE() << what << " did not throw";
    return std::system_error(jobpoll::error_code{});
  }
  return *caught;
}

}  // namespace jobpoll_test
