#pragma once

#include "msg/outcome.hpp"

#include <string>

namespace msg {

// `text` on one line: CR and LF become blanks. Agents read a helper's
// stderr as one reason line; CLI11 and exceptions may carry newlines.
std::string one_line(std::string text);

// Where a helper's result becomes its exit status: 0 when healthy;
// otherwise the reason, on one line ("check failed without a reason" when
// it has none), is logged (a warning for 190, an error otherwise) and
// written to stderr, and the OCF code is returned.
int report_exit(const outcome& result);

} // namespace msg
