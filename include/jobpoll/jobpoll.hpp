#pragma once
// Umbrella header: the whole core of jobpoll, job clients included. Not the
// leaves with their own dependencies (<jobpoll/codec/json.hpp>,
// <jobpoll/job_file.hpp>, <jobpoll/transport/curl.hpp>) nor the test aids
// (<jobpoll/transport/scripted.hpp>, <jobpoll/testing/manual_clock.hpp>).

#include "jobpoll/backoff.hpp"
#include "jobpoll/clock.hpp"
#include "jobpoll/codec.hpp"
#include "jobpoll/deadline.hpp"
#include "jobpoll/delay_policy.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/field_status.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/http_status.hpp"
#include "jobpoll/interval.hpp"
#include "jobpoll/jitter.hpp"
#include "jobpoll/job_client.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/job_handle.hpp"
#include "jobpoll/job_status_policy.hpp"
#include "jobpoll/limiter_budget.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_schedule.hpp"
#include "jobpoll/poll_status.hpp"
#include "jobpoll/poll_until.hpp"
#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/retry_after.hpp"
#include "jobpoll/sliding_window_limiter.hpp"
#include "jobpoll/status_policy.hpp"
#include "jobpoll/token_bucket_limiter.hpp"
#include "jobpoll/transport.hpp"
