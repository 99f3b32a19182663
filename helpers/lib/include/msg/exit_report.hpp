#pragma once

#include "msg/outcome.hpp"

#include <functional>
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

// A helper's main once its log is open: returns what `body` returns (an
// exit status), and reports an exception it lets through with report_exit:
// a check_failure's outcome, else an OCF_ERR_GENERIC with its message.
int report_exceptions(const std::function<int()>& body);

} // namespace msg
