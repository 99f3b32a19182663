#pragma once

#include "msg/outcome.hpp"

#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace CLI {
class App;
} // namespace CLI

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

// Parses a helper's command line into `app`. Returns nothing when the
// helper goes on; otherwise the status it exits with: 0 once --help is
// printed, or OCF_ERR_ARGS for bad usage, reported with report_exit and
// CLI11's message, or what `describe` makes of CLI11's error when given
// (CLI11's own exit codes, 100+, mean nothing to an agent).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      const std::function<std::string(const std::exception&)>& describe = {});

} // namespace msg
