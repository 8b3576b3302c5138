// expect: clock
// Options, deadlines and timers take a clock in the sense of <chrono>.
#include <jobpoll/jobpoll.hpp>

struct not_a_clock {};

jobpoll::basic_poll_options<not_a_clock> opts;
