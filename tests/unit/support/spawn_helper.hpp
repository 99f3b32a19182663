#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace msg_test {

// How a helper binary run ended.
struct helper_run {
    int exit_code = -1;              // -1 if it did not exit normally
    bool killed_at_limit = false;    // true if run_helper had to SIGKILL it
    std::string out;                 // everything it wrote to stdout
    std::string err;                 // everything it wrote to stderr
    std::chrono::milliseconds elapsed{};
};

// Runs `program` with `args` (stdin from /dev/null), capturing stdout and
// stderr; a run longer than `limit` is killed, so a hang fails a test
// instead of stalling the suite.
helper_run run_helper(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds limit = std::chrono::seconds(30));

// The lines of `text`, without their newlines; a final unterminated line counts too.
std::vector<std::string> lines_of(const std::string& text);

} // namespace msg_test
