#pragma once

#include "msg/deadline.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boost::process {
class child;
} // namespace boost::process

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

// A service run in the background while a job needs it (msg-recover's
// listener-less maintenance Dovecot). Started as run_child starts a tool (own
// process group, minimal environment, no inherited descriptors) with stdio on
// /dev/null, and it never outlives the helper: it gets SIGKILL when the
// helper dies (PR_SET_PDEATHSIG), and its group is stopped when this object
// goes away.
class background_child {
public:
    // Starts `command`; see started() and launch_error().
    explicit background_child(const child_command& command);
    ~background_child();
    background_child(const background_child&) = delete;
    background_child& operator=(const background_child&) = delete;

    bool started() const { return pid_ > 0; }
    const std::string& launch_error() const { return launch_error_; }
    pid_t pid() const { return pid_; }

    // True until the child has exited (it is reaped then).
    bool running();

    // TERM (and CONT) to its process group, repeated every 100 ms for up to
    // `grace` until it exits, then KILL and up to about 0.5 s to reap it. True when it ended on TERM
    // (or had already ended).
    bool stop(std::chrono::milliseconds grace);

private:
    std::unique_ptr<boost::process::child> child_;
    pid_t pid_ = 0;
    bool ended_ = false;
    std::string launch_error_;
};

} // namespace msg
