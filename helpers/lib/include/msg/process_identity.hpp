#pragma once

#include "msg/outcome.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace msg {

// What a pid file says about its daemon.
enum class pid_file_state {
    running,        // the pid is alive, is one of the daemon's executables, and predates the file
    no_pid_file,    // the file does not exist
    stale_dead,     // unreadable or garbage, or its pid is gone or a zombie
    stale_foreign,  // its pid is alive but is another program, or started after the file was written:
                    // callers must never signal it
};

struct pid_file_check {
    pid_file_state state = pid_file_state::no_pid_file;
    pid_t pid = 0;        // the pid the file names; 0 when it names none
    std::string comm;     // of that pid, when it is alive
    std::string exe;      // of that pid, when it is alive and readable
    std::string reason;   // one line for ocf_exit_reason; empty when running
};

// One process as /proc/PID/stat shows it.
struct proc_stat {
    pid_t pid = 0;
    std::string comm;
    char state = '?';                  // R, S, D, T, t, Z, X, ...
    pid_t ppid = 0;
    unsigned long long start_ticks = 0;  // field 22: clock ticks after boot
};

// Checks `pid_file` against the daemon's acceptable executables (absolute
// paths; symlinks are resolved, and an executable replaced by a package
// upgrade, which /proc shows with a " (deleted)" suffix, still counts).
// The pid's start time may be at most 1 s later than the file's mtime.
pid_file_check check_pid_file(const std::filesystem::path& pid_file,
                              const std::vector<std::filesystem::path>& daemon_exes);

// For a daemon that works in a directory of its own (Postfix's master in its
// queue_directory, Dovecot's in its base_dir): a `running` check whose
// process's working directory (/proc/PID/cwd) is not `work_dir` becomes
// stale_foreign, with a reason naming `daemon` and the directory. That
// process is the same program serving another instance, which a stale pid
// file happens to name: callers must never signal it. Other states are
// returned unchanged.
pid_file_check require_working_directory(pid_file_check check, const std::filesystem::path& pid_file,
                                         const std::filesystem::path& work_dir, const std::string& daemon);

// `msg-probe process`: success when the pid file's process is the daemon,
// writing its pid to `out` (with `with_tree`, the pids of it and all its
// descendants, one per line); not_running with check_pid_file's reason
// otherwise, also for a foreign pid, which the caller must never signal;
// err_args for an --exe that is not an absolute path.
outcome check_daemon_process(const std::filesystem::path& pid_file,
                             const std::vector<std::filesystem::path>& daemon_exes, bool with_tree, std::ostream& out);

// /proc/PID/stat, parsed; nullopt when the process does not exist.
std::optional<proc_stat> read_proc_stat(pid_t pid);

// True when `pid` exists and is neither a zombie nor dead (state Z or X):
// this machine's PID 1 reaps late, so kill(pid, 0) alone is not enough.
bool process_alive(pid_t pid);

// /proc/PID/exe with a " (deleted)" suffix removed; nullopt when unreadable.
std::optional<std::string> process_exe(pid_t pid);

// When `pid` started, in wall-clock time (btime + start ticks / CLK_TCK,
// so within about 1 s); nullopt when the process does not exist.
std::optional<std::chrono::system_clock::time_point> process_start_time(pid_t pid);

// `root` followed by all its descendants (through the ppid links in
// /proc/*/stat), breadth first; empty when `root` does not exist.
std::vector<pid_t> process_tree(pid_t root);

// Strict pid file parse: optional blanks, decimal digits, optional blanks and
// newlines (Postfix pads its pid with leading spaces). nullopt for anything else.
std::optional<pid_t> parse_pid(const std::string& text);

} // namespace msg
