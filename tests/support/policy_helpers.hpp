#pragma once
// Helpers shared by the tests of the delay policies, and the message of a
// rejected argument (std::invalid_argument) for any test.

#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace jobpoll_test {

/// The next `count` waits of `policy`.
template <class P>
std::vector<std::chrono::nanoseconds> take(P& policy, std::size_t count) {
  std::vector<std::chrono::nanoseconds> waits;
  for (std::size_t i = 0; i < count; ++i) waits.push_back(policy.next());
  return waits;
}

/// The message of the std::invalid_argument that `make` throws.
inline std::string invalid_argument_message(const std::function<void()>& make) {
  try {
    make();
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  ADD_FAILURE() << "no std::invalid_argument thrown";
  return {};
}

}  // namespace jobpoll_test
