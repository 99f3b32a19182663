#include "msg/process_identity.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

namespace msg {

namespace {

constexpr std::string_view deleted_suffix = " (deleted)";
// btime in /proc/stat is whole seconds, so a start time computed from it can
// be up to a second late; a pid file written in the same second as the
// daemon started must still count.
constexpr auto start_time_slack = std::chrono::seconds(1);

std::string proc_path(pid_t pid, const char* leaf)
{
    return "/proc/" + std::to_string(pid) + "/" + leaf;
}

bool read_small_file(const std::string& path, std::string& text)
{
    std::ifstream in(path);
    if (!in) {
        return false;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
    return true;
}

std::optional<long long> boot_time_seconds()
{
    std::ifstream stat("/proc/stat");
    std::string key;
    while (stat >> key) {
        if (key == "btime") {
            long long value = 0;
            if (stat >> value) {
                return value;
            }
            return std::nullopt;
        }
        stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return std::nullopt;
}

std::string join_paths(const std::vector<std::filesystem::path>& paths)
{
    std::string text;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        if (i > 0) {
            text += " or ";
        }
        text += paths[i].string();
    }
    return text.empty() ? std::string("the daemon") : text;
}

bool exe_matches(const std::string& exe, const std::vector<std::filesystem::path>& daemon_exes)
{
    const std::filesystem::path actual(exe);
    for (const auto& expected : daemon_exes) {
        if (actual == expected.lexically_normal()) {
            return true;
        }
        // /proc shows the resolved path; the caller may name a symlink.
        std::error_code ec;
        const auto resolved = std::filesystem::weakly_canonical(expected, ec);
        if (!ec && actual == resolved) {
            return true;
        }
    }
    return false;
}

struct pid_file_text {
    int error = 0;  // errno of open/read, 0 when read
    std::string text;
    std::chrono::system_clock::time_point mtime;
};

pid_file_text read_pid_file(const std::filesystem::path& pid_file)
{
    pid_file_text file;
    const int fd = ::open(pid_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        file.error = errno;
        return file;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        file.error = errno;
    } else if (!S_ISREG(st.st_mode)) {
        file.error = EINVAL;
    } else {
        file.mtime = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
        // A pid file is a few bytes; anything longer than this is not one.
        char buffer[128];
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            file.error = errno;
        } else {
            file.text.assign(buffer, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return file;
}

} // namespace

std::optional<pid_t> parse_pid(const std::string& text)
{
    std::size_t i = 0;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
        ++i;
    }
    const std::size_t digits_start = i;
    long long value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value = value * 10 + (text[i] - '0');
        if (value > INT_MAX) {
            return std::nullopt;
        }
        ++i;
    }
    if (i == digits_start || value <= 0) {
        return std::nullopt;
    }
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        ++i;
    }
    if (i != text.size()) {
        return std::nullopt;
    }
    return static_cast<pid_t>(value);
}

std::optional<proc_stat> read_proc_stat(pid_t pid)
{
    std::string line;
    if (pid <= 0 || !read_small_file(proc_path(pid, "stat"), line)) {
        return std::nullopt;
    }
    // comm may itself contain spaces and parentheses: it ends at the last ')'.
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) {
        return std::nullopt;
    }
    proc_stat stat;
    stat.pid = pid;
    stat.comm = line.substr(open + 1, close - open - 1);
    std::istringstream fields(line.substr(close + 1));
    std::string field;
    // Fields 3 onwards; field 22 is the start time.
    std::vector<std::string> rest;
    while (fields >> field && rest.size() < 20) {
        rest.push_back(field);
    }
    if (rest.size() < 20 || rest[0].size() != 1) {
        return std::nullopt;
    }
    try {
        stat.state = rest[0][0];
        stat.ppid = static_cast<pid_t>(std::stol(rest[1]));
        stat.start_ticks = std::stoull(rest[19]);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    return stat;
}

bool process_alive(pid_t pid)
{
    const auto stat = read_proc_stat(pid);
    return stat && stat->state != 'Z' && stat->state != 'X';
}

std::optional<std::string> process_exe(pid_t pid)
{
    if (pid <= 0) {
        return std::nullopt;
    }
    std::error_code ec;
    auto target = std::filesystem::read_symlink(proc_path(pid, "exe"), ec).string();
    if (ec) {
        return std::nullopt;
    }
    // After a package upgrade the running binary is unlinked and the kernel
    // appends this suffix; the daemon is still the one we started.
    if (target.size() > deleted_suffix.size() &&
        std::string_view(target).substr(target.size() - deleted_suffix.size()) == deleted_suffix) {
        target.resize(target.size() - deleted_suffix.size());
    }
    return target;
}

std::optional<std::chrono::system_clock::time_point> process_start_time(pid_t pid)
{
    const auto stat = read_proc_stat(pid);
    const auto btime = boot_time_seconds();
    const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    if (!stat || !btime || ticks_per_second <= 0) {
        return std::nullopt;
    }
    const auto ticks = static_cast<long long>(stat->start_ticks);
    const auto since_boot = std::chrono::seconds(ticks / ticks_per_second) +
                            std::chrono::nanoseconds((ticks % ticks_per_second) * 1'000'000'000LL / ticks_per_second);
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(*btime) + since_boot));
}

pid_file_check check_pid_file(const std::filesystem::path& pid_file,
                              const std::vector<std::filesystem::path>& daemon_exes)
{
    pid_file_check check;
    const std::string name = pid_file.string();
    const auto file = read_pid_file(pid_file);
    if (file.error == ENOENT || file.error == ENOTDIR) {
        check.state = pid_file_state::no_pid_file;
        check.reason = "pid file " + name + " does not exist";
        return check;
    }
    if (file.error != 0) {
        check.state = pid_file_state::stale_dead;
        check.reason = "cannot read pid file " + name + ": " + std::strerror(file.error);
        return check;
    }
    const auto pid = parse_pid(file.text);
    if (!pid) {
        check.state = pid_file_state::stale_dead;
        check.reason = "pid file " + name + " does not hold a pid";
        return check;
    }
    check.pid = *pid;
    const std::string names = "pid file " + name + " names PID " + std::to_string(*pid);

    const auto stat = read_proc_stat(*pid);
    if (!stat) {
        check.state = pid_file_state::stale_dead;
        check.reason = names + ", which is not running";
        return check;
    }
    check.comm = stat->comm;
    if (stat->state == 'Z' || stat->state == 'X') {
        check.state = pid_file_state::stale_dead;
        check.reason = names + " (" + stat->comm + "), which has exited (zombie)";
        return check;
    }

    const auto exe = process_exe(*pid);
    if (!exe) {
        if (!process_alive(*pid)) {
            check.state = pid_file_state::stale_dead;
            check.reason = names + ", which is not running";
            return check;
        }
        // Alive but without a readable executable (a kernel thread, or no
        // permission): we cannot prove it is the daemon, so it is not.
        check.state = pid_file_state::stale_foreign;
        check.reason = names + " (" + stat->comm + "), which is not " + join_paths(daemon_exes) + ": not signalling it";
        return check;
    }
    check.exe = *exe;
    if (!exe_matches(*exe, daemon_exes)) {
        check.state = pid_file_state::stale_foreign;
        check.reason = names + " (" + stat->comm + "), which is not " + join_paths(daemon_exes) + ": not signalling it";
        return check;
    }

    const auto started = process_start_time(*pid);
    if (!started) {
        check.state = pid_file_state::stale_dead;
        check.reason = names + ", which is not running";
        return check;
    }
    if (*started > file.mtime + start_time_slack) {
        // Same program, but it started after the file was last written: the
        // pid was reused, e.g. by another instance of the same daemon.
        check.state = pid_file_state::stale_foreign;
        check.reason = names + " (" + stat->comm + "), which started after the pid file was written: not signalling it";
        return check;
    }
    check.state = pid_file_state::running;
    return check;
}

pid_file_check require_working_directory(pid_file_check check, const std::filesystem::path& pid_file,
                                         const std::filesystem::path& work_dir, const std::string& daemon)
{
    if (check.state != pid_file_state::running) {
        return check;
    }
    std::error_code ec;
    if (!std::filesystem::equivalent(proc_path(check.pid, "cwd"), work_dir, ec)) {
        check.state = pid_file_state::stale_foreign;
        check.reason = "pid file " + pid_file.string() + " names pid " + std::to_string(check.pid) + ", a " + daemon +
                       " working outside " + work_dir.string() + ": another instance, not signalling it";
    }
    return check;
}

outcome check_daemon_process(const std::filesystem::path& pid_file,
                             const std::vector<std::filesystem::path>& daemon_exes, bool with_tree, std::ostream& out)
{
    for (const auto& exe : daemon_exes) {
        if (!exe.is_absolute()) {
            return {ocf_code::err_args, "daemon executable " + exe.string() + " is not an absolute path"};
        }
    }
    const auto check = check_pid_file(pid_file, daemon_exes);
    if (check.state != pid_file_state::running) {
        return outcome::not_running(check.reason);
    }
    if (!with_tree) {
        out << check.pid << '\n';
        return outcome::ok();
    }
    const auto tree = process_tree(check.pid);
    if (tree.empty()) {
        // It died between the two looks.
        return outcome::not_running("pid file " + pid_file.string() + " names PID " + std::to_string(check.pid) +
                                    ", which is not running");
    }
    for (pid_t pid : tree) {
        out << pid << '\n';
    }
    return outcome::ok();
}

std::vector<pid_t> process_tree(pid_t root)
{
    std::vector<pid_t> tree;
    if (!read_proc_stat(root)) {
        return tree;
    }
    std::multimap<pid_t, pid_t> children_of;
    if (DIR* proc = ::opendir("/proc")) {
        while (const dirent* entry = ::readdir(proc)) {
            const auto pid = parse_pid(entry->d_name);
            if (!pid) {
                continue;
            }
            if (const auto stat = read_proc_stat(*pid)) {
                children_of.emplace(stat->ppid, *pid);
            }
        }
        ::closedir(proc);
    }
    std::set<pid_t> seen{root};
    std::deque<pid_t> queue{root};
    while (!queue.empty()) {
        const pid_t pid = queue.front();
        queue.pop_front();
        tree.push_back(pid);
        const auto [first, last] = children_of.equal_range(pid);
        for (auto it = first; it != last; ++it) {
            if (seen.insert(it->second).second) {
                queue.push_back(it->second);
            }
        }
    }
    return tree;
}

} // namespace msg
