#pragma once
// Umbrella header of batches: many jobs under one budget, kept in a store,
// safe to crash, stop and resume, reconciled and audited. Records and audit
// lines are JSON: link `jobpoll::json` (nlohmann::json) as well. The SQLite
// store is a leaf of its own: <jobpoll/store/sqlite.hpp>, `jobpoll::sqlite`.

#include "jobpoll/batch/audit_log.hpp"
#include "jobpoll/batch/batch_fingerprint.hpp"
#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/batch_runner.hpp"
#include "jobpoll/batch/batch_store.hpp"
#include "jobpoll/batch/circuit_breaker.hpp"
#include "jobpoll/batch/reconcile.hpp"
