#pragma once
// Runs one benchmark configuration in a fresh process (so peak RSS and heap
// figures are its own) and reads back the "key=value" figures it prints.

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>

namespace jobpoll_bench {

/// The figures a child printed, by name.
using measurement = std::map<std::string, double>;

/// Runs `command` through the shell and parses every "key=value" (separated
/// by spaces or newlines) it prints. Throws when it cannot be started or
/// exits with a non-zero status (a child checks its own results and fails).
inline measurement run_child(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::system_error(errno, std::generic_category(), "popen");
  std::string out;
  for (std::array<char, 256> buf{}; std::fgets(buf.data(), buf.size(), pipe);) out += buf.data();
  if (pclose(pipe) != 0) throw std::runtime_error("child failed: " + command);
  measurement m;
  for (std::size_t pos = 0; pos < out.size();) {
    const std::size_t eq = out.find('=', pos);
    if (eq == std::string::npos) break;
    const std::size_t end = out.find_first_of(" \n", eq);
    m[out.substr(pos, eq - pos)] = std::atof(out.substr(eq + 1, end - eq - 1).c_str());
    pos = end == std::string::npos ? out.size() : end + 1;
  }
  return m;
}

}  // namespace jobpoll_bench
