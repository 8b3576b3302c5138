#pragma once
// A status policy read from the body: the value at a pointer, matched against
// the lists of values that mean succeeded, failed and pending, after rules
// that combine conditions at several pointers. Generic over any `codec`, so
// it names no JSON library.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
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

inline std::string require_pointer(std::string_view name, std::string pointer) {
  if (const auto problem = pointer_syntax_error(pointer); !problem.empty()) {
    throw_invalid("field_status", std::string{name} + " pointer " + std::string{problem}, detail::in_quotes(pointer));
  }
  return pointer;
}

}  // namespace detail

/// One test of a `field_rule` on a decoded body, at an RFC 6901 pointer.
struct field_condition {
  enum class test {
    present,  ///< a value is there and it is not null
    absent,   ///< nothing is there, or a null
    equals,   ///< a scalar is there whose text (`Codec::text`) is one of `values`
  };

  std::string pointer;
  test kind = test::present;
  std::vector<std::string> values;  ///< for `equals` only, matched exactly and case-sensitively

  /// A null counts as absent because many APIs send `"error": null` on success.
  static field_condition present(std::string pointer) { return {std::move(pointer), test::present, {}}; }
  static field_condition absent(std::string pointer) { return {std::move(pointer), test::absent, {}}; }
  /// Booleans and numbers match their spelling: `equals("/done", {"true"})`.
  static field_condition equals(std::string pointer, std::vector<std::string> values) {
    return {std::move(pointer), test::equals, std::move(values)};
  }
};

/// What a `field_rule` whose conditions all hold makes of the answer.
enum class rule_outcome { succeeded, failed, pending };

/// "When every condition holds, the answer is `then`", with the text of the
/// field at `detail` (if any) added to the poll status's detail.
///
///     {.when = {field_condition::equals("/done", {"true"}), field_condition::present("/error")},
///      .then = rule_outcome::failed,
///      .detail = "/error/message"}
struct field_rule {
  std::vector<field_condition> when;
  rule_outcome then = rule_outcome::succeeded;
  std::optional<std::string> detail = std::nullopt;  ///< a pointer
};

/// A `status_policy` for decoded bodies. Its rules (`rule`,
/// `failed_if_present`, `succeeded_if_present`) come first, in the order they
/// were added: the first whose conditions all hold decides, with a detail
/// that names its conditions (`/done "true" and /error present`), followed by
/// `: <text>` of its `detail` field when present (a failed rule without one
/// uses `failure_detail_at`). A pending rule reports progress and wait hint
/// like a pending status value. When no rule matches, it reads the value at
/// `status_pointer` as text (`Codec::text`) and looks it up, exactly and
/// case-sensitively, in three lists:
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
/// and shows the start of the body (a rule may match such a body first).
/// Pointers are RFC 6901 ("/data/status"). Configuration returns the policy
/// itself, so it chains:
///
///     field_status<json_codec>("/status", {.succeeded = {"completed"},
///                                          .failed = {"failed", "cancelled"},
///                                          .pending = {"pending", "running"}})
///         .progress_at("/progress", 100)
///         .hint_at("/eta_seconds");
///
/// A policy may also be rules only (`from_rules`), with no status pointer:
/// an answer no rule matches is then `errc::unknown_status` (or pending under
/// `on_unknown(unknown_is::pending)`), its detail showing the body and the
/// rules. Google's long-running operations, either way:
///
///     field_status<json_codec>("/done", {.succeeded = {"true"}, .failed = {}, .pending = {"false"}})
///         .failed_if_present("/error")
///         .failure_detail_at("/error/message");
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

  /// A policy of rules only: no status pointer, no lists; the first rule
  /// whose conditions all hold decides (see the class comment). Throws
  /// `std::invalid_argument` when a rule is malformed (as `rule` says) or
  /// when no rule ends in `rule_outcome::succeeded` (no answer could then
  /// end the poll successfully).
  static field_status from_rules(std::vector<field_rule> rules, Codec codec = {}) {
    field_status policy{std::move(codec)};
    for (auto& r : rules) policy.rule(std::move(r));
    if (std::none_of(policy.rules_.begin(), policy.rules_.end(),
                     [](const labelled_rule& r) { return r.rule.then == rule_outcome::succeeded; })) {
      detail::throw_invalid("field_status", "a policy of rules only needs a rule that ends in succeeded",
                            std::to_string(policy.rules_.size()) + " rules");
    }
    return policy;
  }

  /// Adds a rule after the existing ones. Throws `std::invalid_argument`
  /// naming the rule (1 for the first) and the pointer when the rule has no
  /// condition, an `equals` condition lists no value, or a pointer is malformed.
  field_status& rule(field_rule r) & {
    const std::string name = "rule " + std::to_string(rules_.size() + 1);
    if (r.when.empty()) detail::throw_invalid("field_status", name + " must have a condition", "none");
    std::string label;
    for (std::size_t i = 0; i < r.when.size(); ++i) {
      const auto& condition = r.when[i];
      const std::string condition_name = name + " condition " + std::to_string(i + 1);
      detail::require_pointer(condition_name, condition.pointer);
      if (condition.kind == field_condition::test::equals && condition.values.empty()) {
        detail::throw_invalid("field_status", condition_name + " must list a value to equal",
                              "none at " + detail::pointer_name(condition.pointer));
      }
      label += (i == 0 ? "" : " and ") + describe(condition);
    }
    if (r.detail) detail::require_pointer(name + " detail", *r.detail);
    rules_.push_back({std::move(r), std::move(label)});
    return *this;
  }
  field_status&& rule(field_rule r) && { return std::move(rule(std::move(r))); }

  /// Adds the rule "a value (not null) at `pointer` means failed", e.g.
  /// `failed_if_present("/error")`. Throws `std::invalid_argument` for a
  /// malformed pointer.
  field_status& failed_if_present(std::string pointer) & {
    detail::require_pointer("failed_if_present", pointer);
    return rule({{field_condition::present(std::move(pointer))}, rule_outcome::failed, std::nullopt});
  }
  field_status&& failed_if_present(std::string pointer) && {
    return std::move(failed_if_present(std::move(pointer)));
  }

  /// Adds the rule "a value (not null) at `pointer` means succeeded", e.g.
  /// `succeeded_if_present("/response")`. Throws `std::invalid_argument` for
  /// a malformed pointer.
  field_status& succeeded_if_present(std::string pointer) & {
    detail::require_pointer("succeeded_if_present", pointer);
    return rule({{field_condition::present(std::move(pointer))}, rule_outcome::succeeded, std::nullopt});
  }
  field_status&& succeeded_if_present(std::string pointer) && {
    return std::move(succeeded_if_present(std::move(pointer)));
  }

  /// What a value in none of the lists, or an answer no rule matches in a
  /// policy of rules only, means (default `unknown_is::error`).
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
    for (const auto& r : rules_) {
      if (std::all_of(r.rule.when.begin(), r.rule.when.end(), [&](const auto& c) { return holds(body, c); })) {
        return decide(body, r);
      }
    }
    if (!status_pointer_) return unmatched(body);
    const std::string& status_pointer = *status_pointer_;
    const value_type* field = codec_.find(body, status_pointer);
    if (field == nullptr) {
      return poll_status::permanent(errc::decode_error,
                                    "no status at " + detail::pointer_name(status_pointer) + " in " + preview(body));
    }
    const std::optional<std::string> status = codec_.text(*field);
    if (!status) {
      return poll_status::permanent(errc::decode_error, "status at " + detail::pointer_name(status_pointer) +
                                                            " is not a string, number or boolean: " + preview(*field) +
                                                            " in " + preview(body));
    }
    if (listed(values_.succeeded, *status)) return poll_status::succeeded("status " + detail::in_quotes(*status));
    if (listed(values_.failed, *status)) {
      return poll_status::failed("status " + detail::in_quotes(*status) + field_detail(body, failure_detail_pointer_));
    }
    if (listed(values_.pending, *status)) return pending_status(body, "status " + detail::in_quotes(*status));
    const std::string unknown =
        "unknown status " + detail::in_quotes(*status) + " at " + detail::pointer_name(status_pointer);
    if (unknown_ == unknown_is::pending) {
      return pending_status(body, unknown + ", taken as pending (expected one of: " + expected() + ")");
    }
    return poll_status::permanent(errc::unknown_status, unknown + " (expected one of: " + expected() + ")");
  }

 private:
  /// A rule with the text messages name it by.
  struct labelled_rule {
    field_rule rule;
    std::string label;  ///< `/done "true" and /error present`
  };

  explicit field_status(Codec codec) : codec_(std::move(codec)) {}

  static std::string describe(const field_condition& condition) {
    std::string out = condition.pointer.empty() ? detail::pointer_name(condition.pointer) : condition.pointer;
    switch (condition.kind) {
      case field_condition::test::present: return out + " present";
      case field_condition::test::absent: return out + " absent";
      case field_condition::test::equals: break;
    }
    for (std::size_t i = 0; i < condition.values.size(); ++i) {
      out += (i == 0 ? " " : " | ") + detail::in_quotes(condition.values[i]);
    }
    return out;
  }

  bool holds(const value_type& body, const field_condition& condition) const {
    const value_type* field = codec_.find(body, condition.pointer);
    const bool there = field != nullptr && !is_null(*field);
    switch (condition.kind) {
      case field_condition::test::present: return there;
      case field_condition::test::absent: return !there;
      case field_condition::test::equals: break;
    }
    if (field == nullptr) return false;
    const std::optional<std::string> text = codec_.text(*field);
    return text && listed(condition.values, *text);
  }

  /// A null is the codec's default-constructed value (nlohmann's null): a
  /// document model without equality has no null.
  bool is_null(const value_type& value) const {
    if constexpr (std::equality_comparable<value_type>) {
      return !codec_.text(value) && value == value_type{};
    } else {
      return false;
    }
  }

  poll_status decide(const value_type& body, const labelled_rule& r) const {
    const std::optional<std::string>& detail_pointer =
        r.rule.detail || r.rule.then != rule_outcome::failed ? r.rule.detail : failure_detail_pointer_;
    std::string detail = r.label + field_detail(body, detail_pointer);
    switch (r.rule.then) {
      case rule_outcome::succeeded: return poll_status::succeeded(std::move(detail));
      case rule_outcome::failed: return poll_status::failed(std::move(detail));
      case rule_outcome::pending: break;
    }
    return pending_status(body, std::move(detail));
  }

  /// The verdict on an answer no rule matched, in a policy of rules only.
  poll_status unmatched(const value_type& body) const {
    static constexpr std::string_view outcomes[] = {"succeeded", "failed", "pending"};
    std::string rules;
    for (const auto& r : rules_) {
      rules += (rules.empty() ? "" : "; ") + r.label + " -> " +
               std::string{outcomes[static_cast<std::size_t>(r.rule.then)]};
    }
    if (unknown_ == unknown_is::pending) {
      return pending_status(body, "no rule matched, taken as pending (rules: " + rules + ")");
    }
    return poll_status::permanent(errc::unknown_status, "no rule matched " + preview(body) + " (rules: " + rules + ")");
  }

  static bool listed(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
  }

  // Bounded whatever the value's size or depth (codec_preview never encodes a whole document).
  std::string preview(const value_type& value) const { return detail::codec_preview(codec_, value); }

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

  /// ": <text>" of the field at `pointer`, or "" when there is none.
  std::string field_detail(const value_type& body, const std::optional<std::string>& pointer) const {
    const value_type* field = field_at(body, pointer);
    if (field == nullptr) return {};
    const std::optional<std::string> text = codec_.text(*field);
    return ": " + (text ? body_preview(*text) : preview(*field));
  }

  Codec codec_;
  std::optional<std::string> status_pointer_;  ///< none in a policy of rules only
  values values_;
  std::vector<labelled_rule> rules_;
  unknown_is unknown_ = unknown_is::error;
  std::optional<std::string> progress_pointer_;
  double progress_scale_ = 1.0;
  std::optional<std::string> hint_pointer_;
  std::chrono::nanoseconds hint_unit_{std::chrono::seconds{1}};
  std::optional<std::string> failure_detail_pointer_;
};

}  // namespace jobpoll
