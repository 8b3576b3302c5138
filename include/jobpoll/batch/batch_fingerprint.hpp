#pragma once
// The fingerprint of a batch's input, so that a resume with other input is
// refused: computed entry by entry, so the input never has to be held whole.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "jobpoll/batch/batch_job.hpp"

namespace jobpoll {

namespace detail {

/// FNV-1a, 64 bits.
class fnv1a64 {
 public:
  void bytes(std::string_view data) noexcept {
    for (const char c : data) {
      hash_ ^= static_cast<unsigned char>(c);
      hash_ *= 0x100000001b3ULL;
    }
  }
  /// `n` as 8 bytes, least significant first (the same on every machine).
  void number(std::uint64_t n) noexcept {
    char le[8];
    for (auto& b : le) {
      b = static_cast<char>(n & 0xff);
      n >>= 8;
    }
    bytes({le, sizeof le});
  }
  /// Its length, then its bytes: no two sequences of texts hash the same bytes.
  void text(std::string_view s) noexcept {
    number(s.size());
    bytes(s);
  }
  std::uint64_t value() const noexcept { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace detail

/// Builds `batch_fingerprint` one entry at a time: `batch_fingerprinter f(n);`
/// then `f.add(entry)` for each of the `n` entries in order, then `f.value()`.
class batch_fingerprinter {
 public:
  explicit batch_fingerprinter(std::size_t entries) noexcept { hash_.number(entries); }

  void add(const batch_entry& entry) noexcept {
    hash_.number(entry.params.size());
    for (const auto& [name, value] : entry.params) {
      hash_.text(name);
      hash_.text(value);
    }
    hash_.number(entry.skip ? 1 : 0);
    hash_.text(entry.skip_reason);
  }

  /// 16 lowercase hex digits.
  std::string value() const {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    std::uint64_t v = hash_.value();
    for (std::size_t i = 16; i-- > 0; v >>= 4) out[i] = hex[v & 0xf];
    return out;
  }

 private:
  detail::fnv1a64 hash_;
};

/// The fingerprint of a batch's input: 16 lowercase hex digits, the 64-bit
/// FNV-1a hash of the number of entries, then of each entry in order its
/// parameters (their count, then each name and value, each as its length
/// and its bytes, in name order), its skip flag (0 or 1) and its skip
/// reason; every integer as 8 bytes, least significant first. Two
/// different entry lists differ (short of a hash collision: this guards
/// against a resume with changed input, not against forgery); the same
/// list gives the same fingerprint in every run and on every machine.
inline std::string batch_fingerprint(std::span<const batch_entry> entries) {
  batch_fingerprinter f(entries.size());
  for (const batch_entry& entry : entries) f.add(entry);
  return f.value();
}

}  // namespace jobpoll
