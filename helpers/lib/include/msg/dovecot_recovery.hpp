#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/quorum.hpp"
#include "msg/recovery_steps.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

struct dovecot_recovery_options {
    std::filesystem::path config_file = "/etc/dovecot/dovecot.conf";  // used for every dovecot/doveconf/doveadm call
    std::filesystem::path mail_root;        // the Maildir store; empty: no store walk (dotlocks, tmp/)
    std::filesystem::path dovecot = "/usr/sbin/dovecot";
    std::filesystem::path doveconf = "/usr/bin/doveconf";
    std::filesystem::path doveadm = "/usr/bin/doveadm";
    std::chrono::seconds tmp_min_age{3600};  // Maildir tmp/ files at least this old are quarantined
    bool check_indexes = true;               // open every mailbox, force-resync those that fail
};

// One mailbox, named as doveadm names it.
struct mailbox_ref {
    std::string user;
    std::string mailbox;
    bool operator==(const mailbox_ref&) const = default;
};

// What recovery did. `result` carries the exit code and reason; on success
// `summary` is the one line msg-recover prints on stdout.
struct dovecot_recovery_report {
    outcome result;
    std::string summary;
    quorum_status quorum;
    bool master_running = false;  // a live master was found: nothing was touched
    pid_t master_pid = 0;
    std::vector<std::filesystem::path> removed;      // stale master.pid and dotlocks
    std::vector<std::filesystem::path> live_locks;   // dotlocks a live local process owns: left alone
    std::vector<std::filesystem::path> quarantined;  // tmp/ leftovers, now below quarantine_dir
    std::filesystem::path quarantine_dir;            // set when something was quarantined
    std::size_t maildirs = 0;                        // Maildirs (folders included) walked
    std::vector<mailbox_ref> rebuilt;                // force-resync made them open cleanly
    std::vector<mailbox_ref> still_failing;          // still fail to open after force-resync
    std::string index_check_skipped;                 // why the index check did not (fully) run; empty: it did
    std::filesystem::path maintenance_base_dir;      // the maintenance instance's private base_dir, removed after
};

// Recovers a Dovecot instance's store before it starts on this node:
//  1. refuses (err_generic) unless the node is quorate or no corosync runs;
//  2. reads base_dir with one doveconf call (a config doveconf rejects:
//     err_configured with its own message; no config file: err_installed);
//  3. if the instance's master is alive (base_dir/master.pid names a live
//     dovecot), touches nothing and succeeds;
//  4. else removes a stale master.pid; below mail_root (which must exist:
//     err_installed, the store is not mounted), removes Maildir dotlocks
//     (*.lock) that no live process of this host owns, and moves tmp/ files
//     older than tmp_min_age into mail_root/msg-quarantine/<UTC time>/
//     (mail is never deleted);
//  5. with check_indexes, runs a listener-less maintenance Dovecot (own
//     base_dir, protocols = none) so that doveadm can list users (the userdb
//     must support iteration, as passwd-file does), opens every mailbox and
//     rebuilds those that report an error with `doveadm force-resync`.
//     An index check that cannot list users, or runs out of its share of
//     time, is skipped with a warning: Dovecot also repairs indexes as it
//     opens them.
// Running out of `limit` gives err_generic.
dovecot_recovery_report recover_dovecot(const dovecot_recovery_options& options, const quorum_check& quorum,
                                        const deadline& limit);

// The mailboxes doveadm's stderr reports errors for, in order, without
// duplicates: lines like "doveadm(USER): Error: Mailbox NAME: ..." (also
// with "<pid><session>" after the user).
std::vector<mailbox_ref> mailboxes_with_errors(const std::string& doveadm_stderr);

// A Dovecot dotlock's owner: "PID:HOST" as Dovecot writes it. nullopt for
// anything else (an empty or foreign lock file).
struct dotlock_owner {
    pid_t pid = 0;
    std::string host;
};
std::optional<dotlock_owner> parse_dotlock(std::string_view content);

// The line of a Dovecot tool's output that says what went wrong: the first
// "Fatal:" line, else the first "Panic:" or "Error:" line, else the last
// non-empty line; trimmed. Empty when the text is blank.
std::string dovecot_error_line(const std::string& text);

} // namespace msg
