#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/quorum.hpp"
#include "msg/recovery_steps.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

struct innd_recovery_options {
    std::filesystem::path inn_conf = "/etc/news/inn.conf";    // the instance's INNCONF, in every INN tool's environment
    std::filesystem::path inn_bin_dir = "/usr/lib/news/bin";  // where innconfval is; the other tools come from pathbin
};

// What msg-recover did to the history database (pathdb/history and its dbz index).
enum class history_repair {
    none,             // found intact (or not checked: see history_finding)
    index_rebuilt,    // the dbz index was rebuilt from the intact text (makedbz)
    history_rebuilt,  // the text was rebuilt from the spool (makehistory), then its index (makedbz)
};

// What recovery did. `result` carries the exit code and reason; on success
// `summary` is the one line msg-recover prints on stdout.
struct innd_recovery_report {
    outcome result;
    std::string summary;
    quorum_status quorum;
    bool innd_running = false;      // a live innd was found: nothing was touched
    pid_t innd_pid = 0;
    std::string server_mode;        // a live innd's `ctlinnd mode` line, e.g. "Server throttled disk full"
    bool unclean_shutdown = false;  // innd.pid was left by an innd that is gone
    bool pathrun_created = false;   // pathrun did not exist on this node and was created
    std::vector<std::filesystem::path> removed;      // stale pid file and sockets
    std::vector<std::filesystem::path> live_sockets; // sockets a live process still serves: left alone
    std::string history_finding;    // what was wrong with the history database; empty when intact
    history_repair repair = history_repair::none;
    std::filesystem::path damaged_history;  // where the damaged history text was kept (history_rebuilt)
    std::uint64_t history_entries = 0;      // entries in the (rebuilt) dbz index
};

// Recovers an INN instance's store before innd starts on this node:
//  1. refuses (err_generic) unless the node is quorate or no corosync runs;
//  2. reads pathrun, pathdb, patharticles, pathbin, runasuser and runasgroup
//     with one `innconfval -s` (INNCONF in its environment; an inn.conf it
//     rejects: err_configured with its message; none: err_installed);
//  3. if innd runs (pathrun/innd.pid names a live pathbin/innd), touches
//     nothing and succeeds, reporting its `ctlinnd mode` (throttled or
//     paused is logged as a warning); a live process answering on
//     pathrun/control without the pid file naming it is a failure;
//  4. else creates a missing pathrun (owned by runasuser), removes a stale
//     innd.pid and the control, nntpin and ctlinndXXXXXX sockets no live
//     process serves; needs pathdb and patharticles (err_installed: store
//     not mounted) and an active file (or the active.tmp/active.old rc.news
//     falls back to);
//  5. checks the history database (check_history_database) and repairs it
//     as runasuser: a damaged index with `makedbz`; damaged text with
//     `makehistory` into history.n plus the remembered entries the old text
//     still holds, `makedbz`, and a rename into place, keeping the damaged
//     text as history.damaged-<UTC time>.
// Running out of `limit` gives err_generic.
innd_recovery_report recover_innd(const innd_recovery_options& options, const quorum_check& quorum,
                                  const deadline& limit);

// `innconfval -s` output ("PATHRUN='/run/news'; export PATHRUN;") as
// parameter name (lower case) to value, shell quoting undone.
std::map<std::string, std::string> parse_innconfval_shell(const std::string& text);

// True for a history(5) line: "[32 hex digits]<TAB>arrived~expires~posted",
// expires "-" or digits, then optionally "<TAB>@token@".
bool well_formed_history_line(std::string_view line);

// What check_history_database found.
struct history_check {
    bool text_damaged = false;   // the text is missing, cut mid-line, malformed at its end, or shorter than its index
    bool index_damaged = false;  // .dir/.index/.hash missing, inconsistent, or without the newest entries
    std::string finding;         // one line saying what is wrong; empty when intact
    std::uint64_t entries = 0;   // occupied index slots
    std::uint64_t size_hint = 0; // the largest entry count the .dir file remembers (0: unknown)
};

// Checks `history` (pathdb/history) and its dbz files (history.dir, .index,
// .hash, as INN 2.7's hisv6 writes them) without changing anything: the
// text's last 64 KiB must be whole well-formed lines; every index entry must
// point inside the text; the entries pointing into that tail, and the first
// few elsewhere, must point at the start of a line whose hash they carry;
// and the newest line must be indexed (an index the crash left behind is
// stale). Throws check_failure (1) when `limit` passes first.
history_check check_history_database(const std::filesystem::path& history, const deadline& limit);

// The first line of `ctlinnd mode` ("Server running", "Server throttled
// REASON", "Server paused REASON"); empty when there is none.
std::string innd_mode_line(const std::string& ctlinnd_output);

} // namespace msg
