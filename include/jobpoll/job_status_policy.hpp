#pragma once
// The status policy of a job client: what a decoded poll answer means.

#include <type_traits>

#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// Classifies one decoded poll answer of a job: callable as
/// `poll_status(const Value&)` where `Value` is the codec's document type.
/// `field_status` is one; any lambda with that signature is another.
///
/// The job client has already dealt with HTTP before calling it: non-2xx
/// answers are classified by `classify_http_status` (429/5xx transient,
/// 404/410 expired handle, other 4xx permanent) and undecodable bodies are a
/// `decode_error`, so the policy only ever sees a 2xx answer's document. A
/// `Retry-After` header on a pending answer becomes its wait hint unless the
/// policy set one. Like any status policy it may have a member
/// `classify_error(const std::error_code&)` for transport errors.
template <class S, class Value>
concept job_status_policy = std::is_invocable_r_v<poll_status, S&, const Value&>;

}  // namespace jobpoll
