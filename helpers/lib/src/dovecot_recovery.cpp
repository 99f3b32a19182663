#include "msg/dovecot_recovery.hpp"

#include "msg/child_process.hpp"
#include "msg/log.hpp"
#include "msg/process_identity.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace msg {

namespace {

namespace fs = std::filesystem;

// Below mail_root; not a Maildir++ folder name (those start with a dot), so
// Dovecot never takes it for a mailbox.
constexpr const char* quarantine_name = "msg-quarantine";
// Dovecot's dotlocks (dovecot-uidlist.lock, and index locks with
// lock_method = dotlock) all carry this suffix.
constexpr std::string_view lock_suffix = ".lock";
constexpr std::size_t dotlock_max_bytes = 512;
// Dovecot's master stops its children and exits on TERM within this.
constexpr auto maintenance_stop_grace = std::chrono::milliseconds(2000);
// Kept back from the index check so that the maintenance instance is always
// stopped (grace, then KILL and reap) before `limit`.
constexpr auto maintenance_reserve = maintenance_stop_grace + std::chrono::milliseconds(1000);
constexpr auto socket_poll = std::chrono::milliseconds(20);
// Big stores print many lines; the errors must not fall out of the tail.
constexpr std::size_t doveadm_output_bytes = 4 * 1024 * 1024;

child_result run_dovecot_tool(const fs::path& program, std::vector<std::string> args, const deadline& limit)
{
    child_command command;
    command.program = program.string();
    command.args = std::move(args);
    command.max_output_bytes = doveadm_output_bytes;
    return run_child(command, limit);
}

outcome read_base_dir(const dovecot_recovery_options& options, const deadline& limit, fs::path& base_dir)
{
    const auto run =
        run_dovecot_tool(options.doveconf, {"-c", options.config_file.string(), "-h", "base_dir"}, limit);
    auto result = config_tool_result("doveconf", run, dovecot_error_line(run.err));
    if (!result.healthy()) {
        return result;
    }
    base_dir = trim(run.out);
    if (!base_dir.is_absolute()) {
        return outcome::misconfigured("base_dir '" + base_dir.string() + "' of " + options.config_file.string() +
                                      " is not an absolute path");
    }
    return outcome::ok();
}

bool find_live_master(const dovecot_recovery_options& options, const fs::path& base_dir,
                      dovecot_recovery_report& report, pid_file_check& check)
{
    const fs::path pid_file = base_dir / "master.pid";
    // The master works in its base_dir; the master of another instance
    // (same binary) that a stale pid file happens to name does not.
    check = require_working_directory(check_pid_file(pid_file, {options.dovecot}), pid_file, base_dir, "dovecot");
    if (check.state != pid_file_state::running) {
        return false;
    }
    report.master_running = true;
    report.master_pid = check.pid;
    report.summary = "dovecot master is running as pid " + std::to_string(check.pid) + ": nothing recovered";
    return true;
}

bool ends_with(std::string_view text, std::string_view suffix)
{
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool real_directory(const fs::path& path)
{
    std::error_code ec;
    return fs::symlink_status(path, ec).type() == fs::file_type::directory;
}

bool is_maildir(const fs::path& dir)
{
    return real_directory(dir / "cur") && real_directory(dir / "new") && real_directory(dir / "tmp");
}

std::string read_head(const fs::path& file, std::size_t max_bytes)
{
    std::ifstream in(file, std::ios::binary);
    std::string text(max_bytes, '\0');
    in.read(text.data(), static_cast<std::streamsize>(max_bytes));
    text.resize(static_cast<std::size_t>(in.gcount()));
    return text;
}

// Dovecot writes its own hostname into dotlocks; compare the full and the
// short form, as a node may be configured with either.
bool this_host(std::string_view host)
{
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0) {
        return false;
    }
    const std::string full(name.data());
    return host == full || host == full.substr(0, full.find('.'));
}

// Dovecot's programs: the master, doveadm, and everything in its libexec dir.
bool dovecot_program(pid_t pid)
{
    const auto exe = process_exe(pid);
    if (!exe) {
        return false;
    }
    const fs::path path(*exe);
    return path.filename().string().rfind("dove", 0) == 0 || path.parent_path().filename() == "dovecot";
}

// The whole walk of mail_root, with what it has found so far.
class store_walk {
public:
    store_walk(const dovecot_recovery_options& options, const deadline& limit, dovecot_recovery_report& report)
        : options_(options), limit_(limit), report_(report),
          tmp_cutoff_(fs::file_time_type::clock::now() - options.tmp_min_age)
    {
    }

    outcome run()
    {
        // Depth first, without following symlinks, and never into cur/ and
        // new/: those hold the mail, possibly millions of files.
        std::vector<fs::path> pending{options_.mail_root};
        while (!pending.empty()) {
            if (limit_.passed()) {
                return outcome::failed("deadline passed while walking " + options_.mail_root.string() + " (" +
                                       count_of(report_.maildirs, "Maildir", "Maildirs") + " so far)");
            }
            const fs::path dir = pending.back();
            pending.pop_back();
            auto result = visit(dir, pending);
            if (!result.healthy()) {
                return result;
            }
        }
        return outcome::ok();
    }

private:
    outcome visit(const fs::path& dir, std::vector<fs::path>& pending)
    {
        const bool maildir = is_maildir(dir);
        if (maildir) {
            ++report_.maildirs;
            auto result = quarantine_tmp(dir);
            if (!result.healthy()) {
                return result;
            }
        }
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const auto type = it->symlink_status(ec).type();
            if (ec) {
                break;
            }
            const std::string name = it->path().filename().string();
            if (type == fs::file_type::directory) {
                if (dir == options_.mail_root && name == quarantine_name) {
                    continue;
                }
                if (maildir && (name == "cur" || name == "new" || name == "tmp")) {
                    continue;
                }
                pending.push_back(it->path());
            } else if (maildir && type == fs::file_type::regular && ends_with(name, lock_suffix)) {
                auto result = clear_dotlock(it->path());
                if (!result.healthy()) {
                    return result;
                }
            }
        }
        if (ec) {
            log_warning("cannot read " + dir.string() + ": " + ec.message() + "; skipped");
        }
        return outcome::ok();
    }

    // A dotlock stays only while a live Dovecot process on this host owns
    // it. One written on another node is stale: that node no longer runs
    // the instance (we hold quorum and are starting it here), yet Dovecot
    // here would wait out its stale timeout (2 min) before taking it over.
    outcome clear_dotlock(const fs::path& lock)
    {
        const auto owner = parse_dotlock(read_head(lock, dotlock_max_bytes));
        if (owner && this_host(owner->host) && process_alive(owner->pid) && dovecot_program(owner->pid)) {
            log_warning("dotlock " + lock.string() + " is held by live pid " + std::to_string(owner->pid) +
                        ": left alone");
            report_.live_locks.push_back(lock);
            return outcome::ok();
        }
        return remove_stale_file(lock, report_.removed);
    }

    // Files in tmp/ are deliveries that never completed (Dovecot acknowledges
    // a message only once it is in new/ or cur/). They are kept, out of the
    // way, in the quarantine for an administrator to look at.
    outcome quarantine_tmp(const fs::path& maildir)
    {
        std::error_code ec;
        for (fs::directory_iterator it(maildir / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
            std::error_code entry_ec;
            if (it->symlink_status(entry_ec).type() != fs::file_type::regular) {
                continue;
            }
            const auto modified = it->last_write_time(entry_ec);
            if (entry_ec || modified > tmp_cutoff_) {
                continue;
            }
            auto result = quarantine(it->path());
            if (!result.healthy()) {
                return result;
            }
        }
        if (ec && ec != std::errc::no_such_file_or_directory) {
            log_warning("cannot read " + (maildir / "tmp").string() + ": " + ec.message() + "; skipped");
        }
        return outcome::ok();
    }

    outcome quarantine(const fs::path& file)
    {
        if (report_.quarantine_dir.empty()) {
            report_.quarantine_dir = options_.mail_root / quarantine_name / utc_time_stamp();
        }
        const fs::path target = report_.quarantine_dir / file.lexically_relative(options_.mail_root);
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (!ec) {
            // Mail is private: only root may look into the quarantine.
            fs::permissions(options_.mail_root / quarantine_name, fs::perms::owner_all, ec);
        }
        if (ec) {
            return outcome::failed("cannot create quarantine " + target.parent_path().string() + ": " + ec.message());
        }
        if (::rename(file.c_str(), target.c_str()) != 0) {
            if (errno == EXDEV) {
                // Another file system is mounted below mail_root; copying
                // would risk half a copy. Leave it where it is.
                log_warning("cannot quarantine " + file.string() + ": it is on another file system than " +
                            report_.quarantine_dir.string() + "; left in place");
                return outcome::ok();
            }
            return outcome::failed("cannot move " + file.string() + " into quarantine: " + std::strerror(errno));
        }
        log_info("quarantined " + file.string() + " as " + target.string());
        report_.quarantined.push_back(target);
        return outcome::ok();
    }

    const dovecot_recovery_options& options_;
    const deadline& limit_;
    dovecot_recovery_report& report_;
    fs::file_time_type tmp_cutoff_;
};

// A private base_dir for the maintenance instance: never the real one, so a
// maintenance master can never be taken for the instance itself.
fs::path make_private_base_dir()
{
    const fs::path parent = real_directory("/run") ? fs::path("/run") : fs::temp_directory_path();
    std::string pattern = (parent / "msg-recover-dovecot.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw check_failure(outcome::failed("cannot create a maintenance base_dir in " + parent.string() + ": " +
                                            std::strerror(errno)));
    }
    // Dovecot insists on a world-readable base_dir (its login processes).
    std::error_code ec;
    fs::permissions(pattern,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                        fs::perms::others_exec,
                    ec);
    return pattern;
}

bool socket_accepts(const fs::path& path)
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = path.string();
    if (text.size() >= sizeof address.sun_path) {
        return false;
    }
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return connected;
}

// A Dovecot started from the instance's own configuration but with no
// protocols (no IMAP, POP3 or LMTP listener: no client can get in) and its
// own base_dir. It gives doveadm the auth userdb it needs to list users and
// to open their mailboxes.
class maintenance_dovecot {
public:
    maintenance_dovecot(const dovecot_recovery_options& options)
        : options_(options), base_dir_(make_private_base_dir()),
          service_(command(options, base_dir_))
    {
    }

    ~maintenance_dovecot()
    {
        if (service_.started() && !service_.stop(maintenance_stop_grace)) {
            log_warning("maintenance dovecot (pid " + std::to_string(service_.pid()) + ") needed SIGKILL");
        }
        std::error_code ignored;
        fs::remove_all(base_dir_, ignored);
    }
    maintenance_dovecot(const maintenance_dovecot&) = delete;
    maintenance_dovecot& operator=(const maintenance_dovecot&) = delete;

    // Empty once doveadm can reach its auth userdb, else why not.
    std::string wait_ready(const deadline& limit)
    {
        if (!service_.started()) {
            return "cannot start a maintenance dovecot: " + service_.launch_error();
        }
        const fs::path auth_userdb = base_dir_ / "auth-userdb";
        while (!socket_accepts(auth_userdb)) {
            if (!service_.running()) {
                return "the maintenance dovecot exited during start-up (see Dovecot's log)";
            }
            if (limit.passed()) {
                return "the maintenance dovecot did not open " + auth_userdb.string() + " in time";
            }
            std::this_thread::sleep_for(socket_poll);
        }
        return {};
    }

    const fs::path& base_dir() const { return base_dir_; }

    child_result doveadm(std::vector<std::string> args, const deadline& limit) const
    {
        args.insert(args.begin(), {"-c", options_.config_file.string(), "-o", "base_dir=" + base_dir_.string()});
        return run_dovecot_tool(options_.doveadm, std::move(args), limit);
    }

private:
    static child_command command(const dovecot_recovery_options& options, const fs::path& base_dir)
    {
        child_command dovecot;
        dovecot.program = options.dovecot.string();
        dovecot.args = {"-c", options.config_file.string(), "-F", "-o", "protocols=none",
                        "-o", "base_dir=" + base_dir.string()};
        return dovecot;
    }

    const dovecot_recovery_options& options_;
    fs::path base_dir_;
    background_child service_;
};

bool user_listing_failed(const std::string& doveadm_stderr)
{
    return doveadm_stderr.find("userdb list") != std::string::npos ||
           doveadm_stderr.find("Failed to iterate") != std::string::npos;
}

bool reports_error_for(const std::string& doveadm_stderr, const mailbox_ref& box)
{
    const auto reported = mailboxes_with_errors(doveadm_stderr);
    return std::find(reported.begin(), reported.end(), box) != reported.end();
}

// Force-resyncs `box`, then opens it again: rebuilt when it now opens cleanly.
bool rebuild_index(const maintenance_dovecot& maintenance, const mailbox_ref& box, const deadline& limit,
                   std::string& failure)
{
    log_warning("mailbox " + box.mailbox + " of " + box.user + " fails to open: doveadm force-resync");
    const auto resync = maintenance.doveadm({"force-resync", "-u", box.user, box.mailbox}, limit);
    if (!resync.succeeded()) {
        const auto line = dovecot_error_line(resync.err);
        failure = "force-resync " + resync.describe_end() + (line.empty() ? "" : ": " + line);
        return false;
    }
    const auto recheck = maintenance.doveadm({"mailbox", "status", "-u", box.user, "messages", box.mailbox}, limit);
    if (!recheck.succeeded() || reports_error_for(recheck.err, box)) {
        const auto line = dovecot_error_line(recheck.err);
        failure = "still fails after force-resync" + (line.empty() ? "" : ": " + line);
        return false;
    }
    return true;
}

void check_indexes(const dovecot_recovery_options& options, const deadline& limit, dovecot_recovery_report& report)
{
    // What is left of the budget after the maintenance instance is stopped.
    const deadline work_limit = limit.shortened_by(maintenance_reserve);
    if (work_limit.passed()) {
        report.index_check_skipped = "no time left for it";
        return;
    }
    maintenance_dovecot maintenance(options);
    report.maintenance_base_dir = maintenance.base_dir();
    if (auto why = maintenance.wait_ready(work_limit); !why.empty()) {
        report.index_check_skipped = why;
        return;
    }
    const auto scan = maintenance.doveadm({"mailbox", "status", "-A", "messages", "*"}, work_limit);
    if (!scan.started) {
        report.index_check_skipped = "cannot run doveadm: " + scan.launch_error;
        return;
    }
    if (scan.timed_out) {
        report.index_check_skipped = "opening every mailbox took longer than the time left";
        return;
    }
    if (user_listing_failed(scan.err)) {
        report.index_check_skipped = "the userdb cannot list users (needs an iterable userdb such as passwd-file)";
        return;
    }
    const auto failing = mailboxes_with_errors(scan.err);
    if (!scan.succeeded() && failing.empty()) {
        const auto line = dovecot_error_line(scan.err);
        report.index_check_skipped = "doveadm mailbox status " + scan.describe_end() + (line.empty() ? "" : ": " + line);
        return;
    }
    for (const auto& box : failing) {
        if (work_limit.passed()) {
            report.index_check_skipped = "ran out of time after rebuilding " +
                                         count_of(report.rebuilt.size(), "mailbox index", "mailbox indexes");
            return;
        }
        std::string failure;
        if (rebuild_index(maintenance, box, work_limit, failure)) {
            log_info("rebuilt the index of mailbox " + box.mailbox + " of " + box.user);
            report.rebuilt.push_back(box);
        } else {
            log_warning("mailbox " + box.mailbox + " of " + box.user + ": " + failure);
            report.still_failing.push_back(box);
        }
    }
}

std::string recovered_summary(const dovecot_recovery_options& options, const dovecot_recovery_report& report)
{
    std::ostringstream summary;
    summary << "recovered dovecot: removed " << count_of(report.removed.size(), "stale file", "stale files");
    if (options.mail_root.empty()) {
        summary << "; no mail_root given: store not walked";
    } else {
        summary << "; quarantined " << count_of(report.quarantined.size(), "tmp file", "tmp files");
        if (!report.quarantine_dir.empty()) {
            summary << " into " << report.quarantine_dir.string();
        }
        summary << "; walked " << count_of(report.maildirs, "Maildir", "Maildirs");
        if (!report.live_locks.empty()) {
            summary << "; " << count_of(report.live_locks.size(), "live dotlock", "live dotlocks") << " left alone";
        }
    }
    if (!options.check_indexes) {
        summary << "; index check disabled";
    } else if (report.index_check_skipped.empty() || !report.rebuilt.empty() || !report.still_failing.empty()) {
        summary << "; rebuilt " << count_of(report.rebuilt.size(), "mailbox index", "mailbox indexes");
        if (!report.still_failing.empty()) {
            summary << ", " << count_of(report.still_failing.size(), "mailbox", "mailboxes") << " still failing";
        }
    }
    if (options.check_indexes && !report.index_check_skipped.empty()) {
        summary << "; index check skipped: " << report.index_check_skipped;
    }
    summary << "; " << quorum_summary(report.quorum);
    return summary.str();
}

} // namespace

std::vector<mailbox_ref> mailboxes_with_errors(const std::string& doveadm_stderr)
{
    constexpr std::string_view prefix = "doveadm(";
    constexpr std::string_view marker = ": Error: Mailbox ";
    std::vector<mailbox_ref> found;
    for (const auto& line : split_lines(doveadm_stderr)) {
        if (line.rfind(prefix, 0) != 0) {
            continue;
        }
        const auto user_end = line.find(')', prefix.size());
        const auto at = line.find(marker);
        if (user_end == std::string::npos || at == std::string::npos || at < user_end) {
            continue;
        }
        const auto name_begin = at + marker.size();
        const auto name_end = line.find(": ", name_begin);
        if (name_end == std::string::npos || name_end == name_begin) {
            continue;
        }
        mailbox_ref box{line.substr(prefix.size(), user_end - prefix.size()),
                        line.substr(name_begin, name_end - name_begin)};
        if (!box.user.empty() && std::find(found.begin(), found.end(), box) == found.end()) {
            found.push_back(std::move(box));
        }
    }
    return found;
}

std::optional<dotlock_owner> parse_dotlock(std::string_view content)
{
    const auto colon = content.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return std::nullopt;
    }
    dotlock_owner owner;
    const auto digits = content.substr(0, colon);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), owner.pid);
    if (error != std::errc() || end != digits.data() + digits.size() || owner.pid <= 0) {
        return std::nullopt;
    }
    owner.host = trim(content.substr(colon + 1));
    if (owner.host.empty() || owner.host.find_first_of(" \t\r\n") != std::string::npos) {
        return std::nullopt;
    }
    return owner;
}

std::string dovecot_error_line(const std::string& text)
{
    return tool_error_line(text, {"Fatal:", "Panic:", "Error:"});
}

dovecot_recovery_report recover_dovecot(const dovecot_recovery_options& options, const quorum_check& quorum,
                                        const deadline& limit)
{
    dovecot_recovery_report report;
    report.result = gate_on_quorum(quorum, limit, "dovecot", report.quorum);
    if (!report.result.healthy()) {
        return report;
    }

    std::error_code ec;
    if (!fs::is_regular_file(options.config_file, ec)) {
        report.result = {ocf_code::err_installed, "dovecot config file " + options.config_file.string() + " does not exist"};
        return report;
    }
    if (!options.mail_root.empty() && !real_directory(options.mail_root)) {
        report.result = {ocf_code::err_installed,
                         "mail_root " + options.mail_root.string() + " does not exist (store not mounted?)"};
        return report;
    }

    fs::path base_dir;
    report.result = read_base_dir(options, limit, base_dir);
    if (!report.result.healthy()) {
        return report;
    }

    pid_file_check pid_check;
    if (find_live_master(options, base_dir, report, pid_check)) {
        log_info(report.summary);
        return report;
    }
    if (pid_check.state == pid_file_state::stale_foreign) {
        // The file is stale either way; the process it names stays untouched.
        log_warning(pid_check.reason);
    }
    // Dovecot refuses to start while master.pid names a live process, even
    // one that merely reuses a dead master's pid.
    report.result = remove_stale_file(base_dir / "master.pid", report.removed);
    if (!report.result.healthy()) {
        return report;
    }

    if (!options.mail_root.empty()) {
        report.result = store_walk(options, limit, report).run();
        if (!report.result.healthy()) {
            return report;
        }
    }
    if (options.check_indexes) {
        try {
            check_indexes(options, limit, report);
        } catch (const check_failure& e) {
            report.index_check_skipped = e.result().reason();
        }
        if (!report.index_check_skipped.empty()) {
            log_warning("index check skipped: " + report.index_check_skipped);
        }
    }
    if (limit.passed()) {
        report.result = outcome::failed("deadline passed during dovecot store recovery");
        return report;
    }
    report.summary = recovered_summary(options, report);
    log_info(report.summary);
    return report;
}

} // namespace msg
