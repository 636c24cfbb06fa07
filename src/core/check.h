// Internal invariants: a failed RTNQ_CHECK is a bug in rtnq, not bad input, so it stops the program
// with file:line. User-causable failures must return a Status instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#define RTNQ_CHECK(cond, ...)                                                           \
  do {                                                                                  \
    if (!(cond)) [[unlikely]] {                                                         \
      std::fprintf(stderr, "rtnq: internal check failed at %s:%d: %s: %s\n", __FILE__, \
                   __LINE__, #cond, ::fmt::format("" __VA_ARGS__).c_str());            \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
