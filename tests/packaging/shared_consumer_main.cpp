// The shared pieces of a packaged jobpoll: the redis and postgres components
// link and work without a server (a limiter connects on first use; a store
// pointed at a closed port refuses with a store error that says so).

#include <jobpoll/batch/batch_store.hpp>
#include <jobpoll/error.hpp>
#include <jobpoll/redis_limiter.hpp>
#include <jobpoll/store/postgres.hpp>

#include <asio/io_context.hpp>

#include <iostream>
#include <string>
#include <system_error>

static_assert(jobpoll::rate_limiter<jobpoll::redis_limiter>);
static_assert(jobpoll::shared_batch_store<jobpoll::postgres_store>);
static_assert(jobpoll::remote_batch_store<jobpoll::postgres_store>);

int main() {
  asio::io_context io;
  jobpoll::redis_limiter quota(io.get_executor(), jobpoll::parse_redis_limit_url("redis://127.0.0.1:6379/api?rate=20/15s"));
  if (quota.options().budget.count != 20 || quota.waiting() != 0) return 1;
  try {
    jobpoll::postgres_store store("host=127.0.0.1 port=1 connect_timeout=2", "b");
    std::cerr << "a store on a closed port opened\n";
    return 1;
  } catch (const std::system_error& e) {
    std::cout << "postgres_store refused: " << e.what() << '\n';
    return e.code() == jobpoll::errc::store_error ? 0 : 1;
  }
}
