#include "msg/slapd_recovery.hpp"

#include "msg/child_process.hpp"
#include "msg/file_lock.hpp"
#include "msg/log.hpp"
#include "msg/process_identity.hpp"
#include "msg/recovery_steps.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

namespace msg {

namespace {

namespace fs = std::filesystem;

// Configuration files are small; anything larger is not one.
constexpr std::uintmax_t max_config_bytes = 4 * 1024 * 1024;

std::string lower(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string read_config_file(const fs::path& file)
{
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec)
        throw check_failure(outcome::misconfigured("cannot read slapd configuration " + file.string() + ": "
                                                   + ec.message()));
    if (size > max_config_bytes)
        throw check_failure(outcome::misconfigured("slapd configuration " + file.string() + " is over 4 MiB"));
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in)
        throw check_failure(outcome::misconfigured("cannot read slapd configuration " + file.string()));
    return text.str();
}

std::string decode_base64(std::string_view text)
{
    std::string compact;
    for (const char c : text) {
        if (!std::isspace(static_cast<unsigned char>(c)))
            compact += c;
    }
    if (compact.empty() || compact.size() % 4 != 0)
        return {};
    std::string out(compact.size() / 4 * 3, '\0');
    const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                       reinterpret_cast<const unsigned char*>(compact.data()),
                                       static_cast<int>(compact.size()));
    if (length < 0)
        return {};
    // EVP_DecodeBlock counts the padding as decoded zero bytes.
    const auto padding = static_cast<std::size_t>(std::count(compact.end() - 2, compact.end(), '='));
    out.resize(static_cast<std::size_t>(length) - padding);
    return out;
}

// The attribute values of an LDIF file, names lower-cased, in order:
// folded lines joined, "name:: base64" decoded, comments skipped.
std::vector<std::pair<std::string, std::string>> read_ldif(const fs::path& file)
{
    std::vector<std::string> unfolded;
    for (const auto& line : split_lines(read_config_file(file))) {
        std::string_view text(line);
        if (!text.empty() && text.back() == '\r')
            text.remove_suffix(1);
        if (!text.empty() && text.front() == ' ' && !unfolded.empty())
            unfolded.back() += text.substr(1);
        else
            unfolded.emplace_back(text);
    }
    std::vector<std::pair<std::string, std::string>> values;
    for (const auto& line : unfolded) {
        if (line.empty() || line.front() == '#')
            continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        const std::string name = lower(line.substr(0, colon));
        if (colon + 1 < line.size() && line[colon + 1] == ':')
            values.emplace_back(name, decode_base64(line.substr(colon + 2)));
        else
            values.emplace_back(name, trim(line.substr(colon + 1)));
    }
    return values;
}

std::string first_value(const std::vector<std::pair<std::string, std::string>>& values, std::string_view name)
{
    for (const auto& [key, value] : values) {
        if (key == name)
            return value;
    }
    return {};
}

slapd_layout read_cn_config(const fs::path& dir)
{
    slapd_layout layout;
    const auto global = read_ldif(dir / "cn=config.ldif");
    layout.pid_file = first_value(global, "olcpidfile");
    layout.args_file = first_value(global, "olcargsfile");

    // olcDatabase={1}mdb.ldif, ...: slapd's own order is the {N} index.
    std::vector<std::pair<long, fs::path>> databases;
    std::error_code ec;
    for (fs::directory_iterator it(dir / "cn=config", ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.rfind("olcDatabase={", 0) != 0 || it->path().extension() != ".ldif")
            continue;
        databases.emplace_back(std::strtol(name.c_str() + 13, nullptr, 10), it->path());
    }
    std::sort(databases.begin(), databases.end());
    for (const auto& [index, file] : databases) {
        const auto values = read_ldif(file);
        const bool mdb = std::any_of(values.begin(), values.end(), [](const auto& entry) {
            return entry.first == "objectclass" && lower(entry.second) == "olcmdbconfig";
        });
        const std::string directory = first_value(values, "olcdbdirectory");
        if (mdb && !directory.empty())
            layout.db_dirs.emplace_back(directory);
    }
    return layout;
}

// slapd.conf's words: blanks separate, double quotes group, a backslash escapes.
std::vector<std::string> config_words(std::string_view line)
{
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size()) {
            word += line[++i];
            in_word = true;
        } else if (c == '"') {
            quoted = !quoted;
            in_word = true;
        } else if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
            if (in_word)
                words.push_back(std::move(word));
            word.clear();
            in_word = false;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (in_word)
        words.push_back(std::move(word));
    return words;
}

slapd_layout read_slapd_conf(const fs::path& file)
{
    // A line that starts with a blank continues the one before it.
    std::vector<std::string> lines;
    for (const auto& line : split_lines(read_config_file(file))) {
        if (!line.empty() && std::isspace(static_cast<unsigned char>(line.front())) && !lines.empty())
            lines.back() += " " + trim(line);
        else
            lines.push_back(line);
    }
    slapd_layout layout;
    bool in_mdb = false;
    for (const auto& line : lines) {
        if (line.empty() || line.front() == '#')
            continue;
        const auto words = config_words(line);
        if (words.size() < 2)
            continue;
        const std::string keyword = lower(words[0]);
        if (keyword == "pidfile")
            layout.pid_file = words[1];
        else if (keyword == "argsfile")
            layout.args_file = words[1];
        else if (keyword == "database")
            in_mdb = lower(words[1]) == "mdb";
        else if (keyword == "directory" && in_mdb)
            layout.db_dirs.emplace_back(words[1]);
    }
    return layout;
}

std::string canonical_or_same(const fs::path& path)
{
    std::error_code ec;
    const auto resolved = fs::canonical(path, ec);
    return ec ? path.string() : resolved.string();
}

// slapd is alive: its pid file names it, or it holds a database open.
bool find_live_slapd(const slapd_recovery_options& options, const slapd_layout& layout, const pid_file_check& pid_check,
                     slapd_recovery_report& report)
{
    if (pid_check.state == pid_file_state::running) {
        report.slapd_pid = pid_check.pid;
        report.summary = "slapd is running as pid " + std::to_string(pid_check.pid) + ": nothing recovered";
    } else {
        const std::string slapd_exe = canonical_or_same(options.slapd);
        for (const auto& dir : layout.db_dirs) {
            // Every process with an LMDB environment open holds a lock on
            // its lock.mdb for as long as it is open.
            const auto lock = probe_file_lock(dir / "lock.mdb");
            if (!lock.held || lock.holder <= 0 || !process_alive(lock.holder))
                continue;
            const auto exe = process_exe(lock.holder);
            if (!exe || canonical_or_same(*exe) != slapd_exe) {
                log_info("MDB database " + dir.string() + " is open in pid " + std::to_string(lock.holder) + " ("
                         + exe.value_or("?") + "), which is not slapd");
                continue;
            }
            report.slapd_pid = lock.holder;
            report.summary = "slapd is running as pid " + std::to_string(lock.holder) + " (it holds "
                             + (dir / "lock.mdb").string() + "): nothing recovered";
            break;
        }
    }
    report.slapd_running = report.slapd_pid != 0;
    return report.slapd_running;
}

outcome check_configuration(const slapd_recovery_options& options, const deadline& limit)
{
    std::error_code ec;
    const bool directory = fs::is_directory(options.config, ec);
    child_command command;
    command.program = options.slaptest.string();
    // -u: a dry run that opens no database (as root it would create
    // root-owned database files slapd could not open afterwards).
    command.args = {"-u", directory ? "-F" : "-f", options.config.string()};
    const auto run = run_child(command, limit);
    return config_tool_result("slaptest", run, slapd_error_line(run.err + "\n" + run.out));
}

outcome remove_stale_files(const slapd_layout& layout, const pid_file_check& pid_check, slapd_recovery_report& report)
{
    if (pid_check.state == pid_file_state::stale_foreign) {
        // The file is stale either way; the process it names is left alone.
        log_warning(pid_check.reason);
        report.foreign_pids.push_back(pid_check.pid);
    }
    for (const auto& file : {layout.pid_file, layout.args_file}) {
        if (file.empty())
            continue;
        auto removed = remove_stale_file(file, report.removed);
        if (!removed.healthy())
            return removed;
    }
    return outcome::ok();
}

outcome check_database(const slapd_recovery_options& options, const fs::path& dir, const deadline& limit,
                       slapd_recovery_report& report)
{
    std::error_code ec;
    if (!fs::exists(dir / "data.mdb", ec)) {
        log_info("MDB database " + dir.string() + " has no data.mdb yet: slapd creates it");
        report.databases_new.push_back(dir);
        return outcome::ok();
    }
    const fs::path lock_file = dir / "lock.mdb";
    const bool had_lock = fs::exists(lock_file, ec);
    child_command command;
    command.program = options.mdb_stat.string();
    // -rr: list the reader table and clear the slots of dead processes;
    // -a: open every named database, so one that cannot be opened shows.
    command.args = {"-rr", "-a", dir.string()};
    const auto run = run_child(command, limit);
    if (!had_lock) {
        // Created by mdb_stat, as root: slapd, running as its own user,
        // could not open it. slapd makes its own when it starts.
        std::error_code ignored;
        fs::remove(lock_file, ignored);
    }
    if (!run.started || run.timed_out)
        return tool_failure("mdb_stat", run);
    if (!run.succeeded()) {
        std::string detail = tool_error_line(run.err, {"failed", "error"});
        if (detail.empty() || run.signal)
            detail = "mdb_stat " + run.describe_end() + (detail.empty() ? "" : ": " + detail);
        return outcome::failed("MDB database " + dir.string() + " fails to open (" + detail
                               + "): refusing to start slapd on it");
    }
    if (const auto cleared = cleared_reader_count(run.out); cleared && *cleared > 0) {
        log_info("MDB database " + dir.string() + ": cleared "
                 + count_of(*cleared, "stale reader slot", "stale reader slots"));
        report.stale_readers += *cleared;
    }
    report.databases_checked.push_back(dir);
    return outcome::ok();
}

std::string recovered_summary(const slapd_recovery_report& report)
{
    std::ostringstream summary;
    summary << "recovered slapd: removed " << count_of(report.removed.size(), "stale file", "stale files");
    for (const pid_t pid : report.foreign_pids)
        summary << " (pid " << pid << " it named is not slapd: left alone)";
    summary << "; cleared " << count_of(report.stale_readers, "stale MDB reader", "stale MDB readers") << "; "
            << count_of(report.databases_checked.size(), "MDB database", "MDB databases") << " opened cleanly";
    if (!report.databases_new.empty())
        summary << " (" << report.databases_new.size() << " not created yet)";
    summary << "; config check clean; " << quorum_summary(report.quorum);
    return summary.str();
}

} // namespace

slapd_layout read_slapd_layout(const fs::path& config)
{
    std::error_code ec;
    if (fs::is_directory(config, ec))
        return read_cn_config(config);
    if (!fs::exists(config, ec))
        throw check_failure({ocf_code::err_installed, "slapd configuration " + config.string() + " does not exist"});
    return read_slapd_conf(config);
}

std::string slapd_error_line(const std::string& text)
{
    std::string kept;
    for (auto line : split_lines(text)) {
        // slapd's debug output starts each line with its time in hex.
        if (line.size() > 9 && line[8] == ' '
            && std::all_of(line.begin(), line.begin() + 8, [](unsigned char c) { return std::isxdigit(c); }))
            line.erase(0, 9);
        // Harmless after a hand edit (stock-agents-measured.md 6.16), and
        // slaptest's own last words say nothing about the cause.
        if (line.find("checksum error") != std::string::npos || line.find("slaptest: bad configuration") == 0)
            continue;
        kept += line + "\n";
    }
    std::string found = tool_error_line(kept, {"config error", ": line ", "invalid"});
    if (found.empty())
        found = tool_error_line(text, {"slaptest:"});
    return found;
}

std::optional<std::size_t> cleared_reader_count(const std::string& mdb_stat_output)
{
    for (const auto& line : split_lines(mdb_stat_output)) {
        const auto at = line.find(" stale readers cleared");
        if (at == std::string::npos)
            continue;
        const std::string number = trim(std::string_view(line).substr(0, at));
        // from_chars, not stoul: a count too large for size_t (a damaged or
        // foreign mdb_stat) is no count, not an exception out of recovery.
        std::size_t count = 0;
        const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), count);
        if (number.empty() || error != std::errc() || end != number.data() + number.size())
            return std::nullopt;
        return count;
    }
    return std::nullopt;
}

slapd_recovery_report recover_slapd(const slapd_recovery_options& options, const quorum_check& quorum,
                                    const deadline& limit)
{
    slapd_recovery_report report;
    report.result = gate_on_quorum(quorum, limit, "slapd", report.quorum);
    if (!report.result.healthy())
        return report;

    slapd_layout layout;
    try {
        layout = read_slapd_layout(options.config);
    } catch (const check_failure& failure) {
        report.result = failure.result();
        return report;
    }
    if (!options.pid_file.empty())
        layout.pid_file = options.pid_file;
    if (!options.db_dirs.empty())
        layout.db_dirs = options.db_dirs;
    for (const auto& dir : layout.db_dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            // Typically its filesystem is not mounted on this node.
            report.result = {ocf_code::err_installed, "MDB database directory " + dir.string() + " does not exist"};
            return report;
        }
    }

    pid_file_check pid_check;
    if (!layout.pid_file.empty())
        pid_check = check_pid_file(layout.pid_file, {options.slapd});
    if (find_live_slapd(options, layout, pid_check, report)) {
        log_info(report.summary);
        return report;
    }

    report.result = check_configuration(options, limit);
    if (!report.result.healthy())
        return report;
    report.result = remove_stale_files(layout, pid_check, report);
    if (!report.result.healthy())
        return report;
    for (const auto& dir : layout.db_dirs) {
        report.result = check_database(options, dir, limit, report);
        if (!report.result.healthy())
            return report;
    }
    report.summary = recovered_summary(report);
    log_info(report.summary);
    return report;
}

} // namespace msg
