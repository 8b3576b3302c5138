// expect: status_policy
// A status policy must be callable as poll_status(const Response&).
#include <jobpoll/jobpoll.hpp>

asio::awaitable<int> fetch() { co_return 1; }
int not_a_status(const int& n) { return n; }

asio::awaitable<void> use() { co_await jobpoll::poll_until(fetch, not_a_status); }
