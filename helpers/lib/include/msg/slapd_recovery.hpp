#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/quorum.hpp"
#include "msg/recovery_steps.hpp"

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace msg {

struct slapd_recovery_options {
    std::filesystem::path config;    // slapd.conf (a file) or a cn=config directory (slapd.d)
    std::filesystem::path pid_file;  // empty: olcPidFile / pidfile from the configuration
    std::vector<std::filesystem::path> db_dirs;  // empty: every MDB database's olcDbDirectory / directory
    std::filesystem::path slapd = "/usr/sbin/slapd";  // what a live slapd's /proc/PID/exe is
    std::filesystem::path slaptest = "/usr/sbin/slaptest";
    std::filesystem::path mdb_stat = "/usr/bin/mdb_stat";
};

// What a slapd configuration names that recovery cares about.
struct slapd_layout {
    std::filesystem::path pid_file;   // empty when the configuration sets none
    std::filesystem::path args_file;  // empty when the configuration sets none
    std::vector<std::filesystem::path> db_dirs;  // of the MDB databases, in configuration order
};

// Reads `config`: a slapd.conf file (pidfile, argsfile, and directory in
// "database mdb" sections; include files are not followed) or a cn=config
// directory (olcPidFile and olcArgsFile in cn=config.ldif, olcDbDirectory
// of the olcMdbConfig entries in cn=config/olcDatabase=*.ldif). Throws
// check_failure 5 when `config` does not exist, 6 when it cannot be read.
slapd_layout read_slapd_layout(const std::filesystem::path& config);

// What recovery did. `result` carries the exit code and reason; on success
// `summary` is the one line msg-recover prints on stdout.
struct slapd_recovery_report {
    outcome result;
    std::string summary;
    quorum_status quorum;
    bool slapd_running = false;  // a live slapd was found: nothing was touched
    pid_t slapd_pid = 0;
    std::vector<std::filesystem::path> removed;  // stale pid and args files
    std::vector<pid_t> foreign_pids;    // live processes stale pid files named: never signalled
    std::size_t stale_readers = 0;      // MDB reader slots of dead processes, cleared
    std::vector<std::filesystem::path> databases_checked;  // opened cleanly by mdb_stat
    std::vector<std::filesystem::path> databases_new;      // no data.mdb yet: slapd creates it
};

// Recovers a slapd instance before it starts on this node:
//  1. refuses (err_generic) unless the node is quorate or no corosync runs;
//  2. reads the layout (read_slapd_layout; options override pid file and
//     database directories); a database directory that does not exist is
//     err_installed (its storage is not mounted here);
//  3. if slapd is alive (the pid file names a live slapd, or a live slapd
//     holds a database's lock.mdb), touches nothing and succeeds;
//  4. runs `slaptest -u` (a configuration it rejects: err_configured with
//     slaptest's own message);
//  5. removes a stale pid file and the args file (a live process the pid
//     file names is never signalled: it is reported in foreign_pids);
//  6. per database with a data.mdb, `mdb_stat -rr -a` clears the reader
//     slots of dead processes and opens every named database: one that
//     fails to open is err_generic, refusing to start slapd on it (a
//     lock.mdb mdb_stat had to create is removed again, so slapd creates
//     its own, owned by its user).
// Running out of `limit` gives err_generic.
slapd_recovery_report recover_slapd(const slapd_recovery_options& options, const quorum_check& quorum,
                                    const deadline& limit);

// The line of slaptest's output that says what is wrong: the first
// "config error", "line N:" or "invalid" line, else the last line that is
// neither an ldif checksum warning nor slaptest's closing "bad
// configuration" line; without a leading debug timestamp; trimmed.
std::string slapd_error_line(const std::string& text);

// N from the "  N stale readers cleared." line of `mdb_stat -rr`.
std::optional<std::size_t> cleared_reader_count(const std::string& mdb_stat_output);

} // namespace msg
