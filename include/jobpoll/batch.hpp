#pragma once
// Umbrella header of batches: many jobs under one budget, safe to interrupt
// and resume, reconciled and audited. Checkpoints and the audit log are
// JSON: link `jobpoll::json` (nlohmann::json) as well.

#include "jobpoll/batch/audit_log.hpp"
#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/batch_runner.hpp"
#include "jobpoll/batch/checkpoint.hpp"
#include "jobpoll/batch/circuit_breaker.hpp"
#include "jobpoll/batch/reconcile.hpp"
