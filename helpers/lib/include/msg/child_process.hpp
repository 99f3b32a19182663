#pragma once

#include "msg/deadline.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msg {

// The PATH every child gets; the caller's own environment is never passed on.
inline constexpr const char* child_path = "/usr/sbin:/usr/bin:/sbin:/bin";

// One run of a service tool (postsuper, postfix check, doveadm, slaptest).
struct child_command {
    // Absolute path, or a bare name looked up in child_path.
    std::string program;
    std::vector<std::string> args;
    // Added to the minimal environment (PATH=child_path, LANG=C). Never put a
    // secret here: /proc/PID/environ is readable by the child's owner.
    std::vector<std::pair<std::string, std::string>> extra_env;
    // Bytes kept of each stream; the tail is kept, because tools print their
    // fatal line last.
    std::size_t max_output_bytes = 64 * 1024;
    // Give the child a pseudo-terminal as stderr. Postfix's commands print
    // their errors to stderr only when it is a terminal (else only to the
    // mail log, which a broken main.cf may leave unusable).
    bool stderr_is_tty = false;
};

// How the child ended, and what it printed.
struct child_result {
    bool started = false;        // false: it never ran; launch_error says why
    std::string launch_error;
    bool timed_out = false;      // still running at the deadline: its whole process group got SIGKILL
    std::optional<int> exit_code;  // set when it exited
    std::optional<int> signal;     // set when a signal ended it
    std::string out;             // tail of stdout
    std::string err;             // tail of stderr (terminal line endings normalised to \n)
    bool output_truncated = false;

    // Exited with status 0 before the deadline.
    bool succeeded() const { return started && !timed_out && exit_code && *exit_code == 0; }
    // "exited with status 1", "killed by signal 9", "still running at the deadline", ...
    std::string describe_end() const;
};

// Runs `command` in its own process group with stdin from /dev/null, an
// explicit minimal environment and no inherited descriptors beyond stdio.
// Returns when the child has exited and its output is read, or at `limit`,
// when the group is killed and the child reaped (this may take up to about
// 0.5 s past `limit`, so callers pass a deadline shortened by that margin).
// Never throws for a child that cannot be started: see child_result::started.
child_result run_child(const child_command& command, const deadline& limit);

// The executable `program` names: itself when it contains a '/', else the
// first executable match in child_path. Empty when there is none.
std::string resolve_program(const std::string& program);

} // namespace msg
