#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/quorum.hpp"
#include "msg/recovery_steps.hpp"

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace msg {

struct postfix_recovery_options {
    std::filesystem::path config_dir;                     // the instance's main.cf and master.cf
    std::filesystem::path postfix_bin_dir = "/usr/sbin";  // where postconf, postsuper and postfix are
};

// What recovery did. `result` carries the exit code and reason; on success
// `summary` is the one line msg-recover prints on stdout.
struct postfix_recovery_report {
    outcome result;
    std::string summary;
    quorum_status quorum;
    bool master_running = false;  // a live master was found: nothing was touched
    pid_t master_pid = 0;         // that master, when known
    std::vector<std::filesystem::path> removed;  // stale files removed
    int check_warnings = 0;       // warnings printed by a passing postfix check
};

// Recovers a Postfix instance's store before it starts on this node:
//  1. refuses (err_generic) unless the node is quorate or no corosync runs;
//  2. reads queue_directory, data_directory, mail_owner, daemon_directory and
//     maillog_file with one postconf call (a config postconf rejects: err_configured);
//  3. if the instance's master is alive (process identity of master.pid or
//     master.lock, or a lock held on either), touches nothing and succeeds;
//  4. else removes master.pid and master.lock, runs `postfix check`
//     (failure: err_configured with Postfix's own message) and `postsuper -s`.
// A missing config dir, queue directory or tool gives err_installed; running
// out of `limit` gives err_generic.
postfix_recovery_report recover_postfix(const postfix_recovery_options& options, const quorum_check& quorum,
                                        const deadline& limit);

// The line of a Postfix tool's output that says what went wrong: the first
// "fatal:" line, else the first "error:" or "panic:" line, else the last
// non-empty line; trimmed. Empty when the text is blank.
std::string postfix_error_line(const std::string& text);

} // namespace msg
