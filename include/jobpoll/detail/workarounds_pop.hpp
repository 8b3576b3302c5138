// No #pragma once (nor include guard), on purpose: it must pop at every
// inclusion, once for each inclusion of workarounds_push.hpp (see the list
// of workarounds there). Include it at the end of a header that included
// workarounds_push.hpp, after its last coroutine.

// W1
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
