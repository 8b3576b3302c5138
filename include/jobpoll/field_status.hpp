#pragma once
// A status policy read from the body: the value at a pointer, matched against
// the lists of values that mean succeeded, failed and pending. Generic over
// any `codec`, so it names no JSON library.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jobpoll/codec.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// What `field_status` makes of a status value that is in none of its lists.
enum class unknown_is {
  error,    ///< a permanent `errc::unknown_status`: a typo in a list ends the poll at once instead of at the deadline
  pending,  ///< keep polling (for APIs that add intermediate states); the detail says the value was unknown
};

namespace detail {

/// Why `pointer` is not an RFC 6901 pointer, or "" when it is one.
constexpr std::string_view pointer_syntax_error(std::string_view pointer) noexcept {
  if (!pointer.empty() && pointer.front() != '/') return "must be empty or start with '/'";
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~' && (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))) {
      return "must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')";
    }
  }
  return {};
}

/// A pointer as messages show it ("" is the whole body).
inline std::string pointer_name(std::string_view pointer) {
  return pointer.empty() ? std::string{"\"\" (the whole body)"} : std::string{pointer};
}

inline std::string require_pointer(std::string_view name, std::string pointer) {
  if (const auto problem = pointer_syntax_error(pointer); !problem.empty()) {
    throw_invalid("field_status", std::string{name} + " pointer " + std::string{problem}, detail::in_quotes(pointer));
  }
  return pointer;
}

}  // namespace detail

/// A `status_policy` for decoded bodies: reads the value at `status_pointer`
/// as text (`Codec::text`) and looks it up, exactly and case-sensitively, in
/// three lists:
///
/// - in `succeeded`: `poll_status::succeeded`, detail `status "pass"`;
/// - in `failed`: `poll_status::failed`, detail `status "fail"`, followed by
///   `: <text>` when `failure_detail_at` names a field that is present;
/// - in `pending`: `poll_status::pending`, detail `status "working"`, with the
///   progress and wait hint of `progress_at` and `hint_at` when present;
/// - in none: a permanent `errc::unknown_status` error whose detail names the
///   value, the pointer and the expected values, or pending with that detail
///   under `on_unknown(unknown_is::pending)`.
///
/// A body without a status at the pointer, or with a null, array or object
/// there, is a permanent `errc::decode_error` whose detail names the pointer
/// and shows the start of the body. Pointers are RFC 6901 ("/data/status").
/// Configuration returns the policy itself, so it chains:
///
///     field_status<json_codec>("/status", {.succeeded = {"completed"},
///                                          .failed = {"failed", "cancelled"},
///                                          .pending = {"pending", "running"}})
///         .progress_at("/progress", 100)
///         .hint_at("/eta_seconds");
///
/// Calls are const and keep no state, so one policy may classify any number
/// of responses, concurrently.
template <codec Codec>
class field_status {
 public:
  using codec_type = Codec;
  using value_type = codec_value_t<Codec>;

  /// The status values that mean each outcome.
  struct values {
    std::vector<std::string> succeeded;
    std::vector<std::string> failed;
    std::vector<std::string> pending;
  };

  /// Throws `std::invalid_argument` when `status_pointer` is malformed, when
  /// `status_values.succeeded` is empty (no answer could then end the poll
  /// successfully) or when a value is in two lists.
  field_status(std::string status_pointer, values status_values, Codec codec = {})
      : codec_(std::move(codec)),
        status_pointer_(detail::require_pointer("status", std::move(status_pointer))),
        values_(std::move(status_values)) {
    if (values_.succeeded.empty()) {
      detail::throw_invalid("field_status", "succeeded must list at least one status value", "none");
    }
    const std::pair<std::string_view, const std::vector<std::string>*> lists[] = {
        {"succeeded", &values_.succeeded}, {"failed", &values_.failed}, {"pending", &values_.pending}};
    for (std::size_t a = 0; a < std::size(lists); ++a) {
      for (std::size_t b = a + 1; b < std::size(lists); ++b) {
        for (const auto& value : *lists[a].second) {
          if (listed(*lists[b].second, value)) {
            detail::throw_invalid("field_status", "a status value must be in one list only",
                                  detail::in_quotes(value) + " in both " + std::string{lists[a].first} + " and " +
                                      std::string{lists[b].first});
          }
        }
      }
    }
  }

  /// What a value in none of the lists means (default `unknown_is::error`).
  field_status& on_unknown(unknown_is meaning) & {
    unknown_ = meaning;
    return *this;
  }
  field_status&& on_unknown(unknown_is meaning) && { return std::move(on_unknown(meaning)); }

  /// Pending answers report progress: the number at `pointer` divided by
  /// `scale` (100 for a percentage), clamped to [0, 1]. A missing or
  /// non-number field reports none. Throws `std::invalid_argument` for a
  /// malformed pointer or a `scale` that is not finite and > 0.
  field_status& progress_at(std::string pointer, double scale = 1.0) & {
    if (!(std::isfinite(scale) && scale > 0.0)) {
      detail::throw_invalid("field_status", "progress scale must be finite and > 0", detail::describe(scale));
    }
    progress_pointer_ = detail::require_pointer("progress", std::move(pointer));
    progress_scale_ = scale;
    return *this;
  }
  field_status&& progress_at(std::string pointer, double scale = 1.0) && {
    return std::move(progress_at(std::move(pointer), scale));
  }

  /// Pending answers carry a wait hint (`poll_status::retry_after`): the
  /// number at `pointer` times `unit`, fractions included (2.5 with the
  /// default unit is 2500ms), saturating at nanoseconds::max(). A missing,
  /// non-number or negative field gives no hint. Throws
  /// `std::invalid_argument` for a malformed pointer or a `unit` <= 0.
  field_status& hint_at(std::string pointer, std::chrono::nanoseconds unit = std::chrono::seconds{1}) & {
    if (unit <= std::chrono::nanoseconds::zero()) {
      detail::throw_invalid("field_status", "hint unit must be > 0ns", detail::describe(unit));
    }
    hint_pointer_ = detail::require_pointer("hint", std::move(pointer));
    hint_unit_ = unit;
    return *this;
  }
  field_status&& hint_at(std::string pointer, std::chrono::nanoseconds unit = std::chrono::seconds{1}) && {
    return std::move(hint_at(std::move(pointer), unit));
  }

  /// Failed answers add the field at `pointer` to their detail: its text, or
  /// the start of its encoding when it is not a scalar ({"code": 7, ...}).
  /// Throws `std::invalid_argument` for a malformed pointer.
  field_status& failure_detail_at(std::string pointer) & {
    failure_detail_pointer_ = detail::require_pointer("failure detail", std::move(pointer));
    return *this;
  }
  field_status&& failure_detail_at(std::string pointer) && {
    return std::move(failure_detail_at(std::move(pointer)));
  }

  /// Classifies one decoded body (see the class comment).
  poll_status operator()(const value_type& body) const {
    const value_type* field = codec_.find(body, status_pointer_);
    if (field == nullptr) {
      return poll_status::permanent(errc::decode_error,
                                    "no status at " + detail::pointer_name(status_pointer_) + " in " + preview(body));
    }
    const std::optional<std::string> status = codec_.text(*field);
    if (!status) {
      return poll_status::permanent(errc::decode_error, "status at " + detail::pointer_name(status_pointer_) +
                                                            " is not a string, number or boolean: " + preview(*field) +
                                                            " in " + preview(body));
    }
    if (listed(values_.succeeded, *status)) return poll_status::succeeded("status " + detail::in_quotes(*status));
    if (listed(values_.failed, *status)) {
      return poll_status::failed("status " + detail::in_quotes(*status) + failure_detail(body));
    }
    if (listed(values_.pending, *status)) return pending_status(body, "status " + detail::in_quotes(*status));
    const std::string unknown = "unknown status " + detail::in_quotes(*status) + " at " + detail::pointer_name(status_pointer_);
    if (unknown_ == unknown_is::pending) {
      return pending_status(body, unknown + ", taken as pending (expected one of: " + expected() + ")");
    }
    return poll_status::permanent(errc::unknown_status, unknown + " (expected one of: " + expected() + ")");
  }

 private:
  static bool listed(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
  }

  std::string preview(const value_type& value) const { return body_preview(codec_.encode(value)); }

  /// "pass | fail | working": every listed value, succeeded first.
  std::string expected() const {
    std::string out;
    for (const auto* list : {&values_.succeeded, &values_.failed, &values_.pending}) {
      for (const auto& value : *list) out += (out.empty() ? "" : " | ") + value;
    }
    return out;
  }

  const value_type* field_at(const value_type& body, const std::optional<std::string>& pointer) const {
    return pointer ? codec_.find(body, *pointer) : nullptr;
  }

  poll_status pending_status(const value_type& body, std::string detail) const {
    poll_status status = poll_status::pending(progress(body), std::move(detail));
    status.retry_after = hint(body);
    return status;
  }

  std::optional<double> progress(const value_type& body) const {
    const value_type* field = field_at(body, progress_pointer_);
    const std::optional<double> number = field ? codec_.number(*field) : std::nullopt;
    if (!number || std::isnan(*number)) return std::nullopt;
    return std::clamp(*number / progress_scale_, 0.0, 1.0);
  }

  std::optional<std::chrono::nanoseconds> hint(const value_type& body) const {
    const value_type* field = field_at(body, hint_pointer_);
    const std::optional<double> number = field ? codec_.number(*field) : std::nullopt;
    if (!number || !(*number >= 0.0)) return std::nullopt;  // also rejects NaN
    const double nanoseconds = *number * static_cast<double>(hint_unit_.count());
    if (nanoseconds >= static_cast<double>(std::chrono::nanoseconds::max().count())) {
      return std::chrono::nanoseconds::max();
    }
    return std::chrono::nanoseconds{std::llround(nanoseconds)};
  }

  /// ": <text>" of the failure detail field, or "" when there is none.
  std::string failure_detail(const value_type& body) const {
    const value_type* field = field_at(body, failure_detail_pointer_);
    if (field == nullptr) return {};
    const std::optional<std::string> text = codec_.text(*field);
    return ": " + (text ? body_preview(*text) : preview(*field));
  }

  Codec codec_;
  std::string status_pointer_;
  values values_;
  unknown_is unknown_ = unknown_is::error;
  std::optional<std::string> progress_pointer_;
  double progress_scale_ = 1.0;
  std::optional<std::string> hint_pointer_;
  std::chrono::nanoseconds hint_unit_{std::chrono::seconds{1}};
  std::optional<std::string> failure_detail_pointer_;
};

}  // namespace jobpoll
