// expect: poll_operation
// A poll operation must return asio::awaitable<Response>.
#include <jobpoll/jobpoll.hpp>

int fetch() { return 1; }

asio::awaitable<void> use() {
  co_await jobpoll::poll_until(fetch, [](const int&) { return jobpoll::poll_status::succeeded(); });
}
