#include "msg/innd_recovery.hpp"

#include "msg/child_process.hpp"
#include "msg/log.hpp"
#include "msg/process_identity.hpp"
#include "msg/reply_text.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

namespace msg {

namespace {

namespace fs = std::filesystem;

// What recovery reads from inn.conf, in one innconfval call.
const std::vector<std::string> innconf_names{"pathrun", "pathdb",    "patharticles", "pathbin",
                                             "runasuser", "runasgroup", "hismethod"};

// The layout of INN 2.7's hisv6 dbz files (lib/dbz.c without tagged hash):
// .index holds one off_t offset into the text per slot, .hash the first 6
// bytes of the message-ID's MD5 per slot; a slot is empty when its hash is
// all zeros (an offset of 0 is the first line). The .dir file's value size
// is their sum.
constexpr std::size_t index_value_bytes = sizeof(off_t);
constexpr std::size_t hash_bytes = 6;
constexpr long dbz_value_size = static_cast<long>(index_value_bytes + hash_bytes);
constexpr std::size_t tail_bytes = 64 * 1024;
// Index entries outside the tail that are checked with a read of their own.
constexpr std::size_t sampled_entries = 32;
constexpr std::size_t walk_slots = 64 * 1024;
constexpr std::size_t copy_chunk = 1024 * 1024;
// The floor of makehistory's table size when nothing better is known.
constexpr std::uint64_t min_history_size = 10000;
// ctlinnd without -t waits forever for a frozen innd (and, killed, leaves
// its socket behind); this is the most it gets here.
constexpr long ctlinnd_max_seconds = 5;

struct inn_layout {
    fs::path pathrun;
    fs::path pathdb;
    fs::path patharticles;
    fs::path pathbin;
    std::string user;
    std::string group;
    std::string hismethod;

    fs::path history() const { return pathdb / "history"; }
    fs::path pid_file() const { return pathrun / "innd.pid"; }
};

// Runs an INN tool from pathbin as runasuser, with the instance's INNCONF:
// files it creates belong to the news user, never to root, and sockets it
// leaves in pathrun can be cleaned up by innd's own rc.news.
child_result run_inn_tool(const innd_recovery_options& options, const inn_layout& layout, const std::string& tool,
                          const std::vector<std::string>& args, const deadline& limit)
{
    child_command command;
    command.program = "setpriv";
    command.args = {"--reuid=" + layout.user, "--regid=" + layout.group, "--init-groups", "--",
                    (layout.pathbin / tool).string()};
    command.args.insert(command.args.end(), args.begin(), args.end());
    command.extra_env = {{"INNCONF", options.inn_conf.string()}};
    return run_child(command, limit);
}

outcome require_tool(const inn_layout& layout, const std::string& tool)
{
    const fs::path program = layout.pathbin / tool;
    if (resolve_program(program.string()).empty()) {
        return {ocf_code::err_installed, "INN tool " + program.string() + " is missing or not executable"};
    }
    return outcome::ok();
}

// The tool's own complaint, or how it ended.
outcome inn_tool_failure(const std::string& what, const child_result& run)
{
    if (!run.started || run.timed_out) {
        return tool_failure(what, run);
    }
    const std::string line = tool_error_line(run.err.empty() ? run.out : run.err, {});
    return outcome::failed(what + " " + run.describe_end() + (line.empty() ? "" : ": " + printable_excerpt(line)));
}

outcome read_layout(const innd_recovery_options& options, const deadline& limit, inn_layout& layout)
{
    child_command command;
    command.program = (options.inn_bin_dir / "innconfval").string();
    command.args = {"-s"};
    command.args.insert(command.args.end(), innconf_names.begin(), innconf_names.end());
    command.extra_env = {{"INNCONF", options.inn_conf.string()}};
    const child_result run = run_child(command, limit);
    auto result = config_tool_result("innconfval", run, tool_error_line(run.err, {"innconfval:"}));
    if (!result.healthy()) {
        return result;
    }
    auto values = parse_innconfval_shell(run.out);
    for (const auto& name : {"pathrun", "pathdb", "patharticles", "pathbin"}) {
        const fs::path dir = values[name];
        if (!dir.is_absolute()) {
            return outcome::misconfigured(std::string(name) + " '" + dir.string() + "' of " +
                                          options.inn_conf.string() + " is not an absolute path");
        }
    }
    layout.pathrun = values["pathrun"];
    layout.pathdb = values["pathdb"];
    layout.patharticles = values["patharticles"];
    layout.pathbin = values["pathbin"];
    // INN's own defaults, for an innconfval that leaves them out.
    layout.user = values["runasuser"].empty() ? "news" : values["runasuser"];
    layout.group = values["runasgroup"].empty() ? "news" : values["runasgroup"];
    layout.hismethod = values["hismethod"].empty() ? "hisv6" : values["hismethod"];
    if (::getpwnam(layout.user.c_str()) == nullptr) {
        return outcome::misconfigured("runasuser '" + layout.user + "' of " + options.inn_conf.string() +
                                      " does not exist");
    }
    if (::getgrnam(layout.group.c_str()) == nullptr) {
        return outcome::misconfigured("runasgroup '" + layout.group + "' of " + options.inn_conf.string() +
                                      " does not exist");
    }
    return outcome::ok();
}

bool directory_exists(const fs::path& path)
{
    std::error_code ec;
    return fs::is_directory(path, ec);
}

// Whether a live process serves the unix socket at `path`: a stream socket
// accepts a connection, a datagram socket (innd's control, ctlinnd's reply
// socket) takes a connect. Only a refusal proves that nobody does; anything
// else leaves the socket alone.
bool socket_served(const fs::path& path)
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = path.string();
    if (text.size() >= sizeof address.sun_path) {
        return true;
    }
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    for (const int type : {SOCK_STREAM, SOCK_DGRAM}) {
        const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            return true;
        }
        const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        const int error = errno;
        ::close(fd);
        if (rc == 0) {
            return true;
        }
        // A bound datagram socket refuses a stream connect with EPROTOTYPE.
        if (error == EPROTOTYPE) {
            continue;
        }
        return error != ECONNREFUSED && error != ENOENT;
    }
    return true;
}

bool socket_file(const fs::path& path)
{
    std::error_code ec;
    return fs::symlink_status(path, ec).type() == fs::file_type::socket;
}

std::string server_mode(const innd_recovery_options& options, const inn_layout& layout, const deadline& limit)
{
    const long left_s = static_cast<long>(limit.remaining_ms().count() / 1000) - 1;
    const long wait_s = std::clamp(left_s, 1L, ctlinnd_max_seconds);
    const auto run = run_inn_tool(options, layout, "ctlinnd", {"-t", std::to_string(wait_s), "mode"}, limit);
    const std::string mode = innd_mode_line(run.out);
    if (!run.succeeded() || mode.empty()) {
        const std::string line = tool_error_line(run.err + run.out, {});
        log_warning("ctlinnd mode " + run.describe_end() + (line.empty() ? "" : ": " + line));
        return {};
    }
    return mode;
}

bool find_live_innd(const innd_recovery_options& options, const inn_layout& layout, const deadline& limit,
                    innd_recovery_report& report, pid_file_check& check)
{
    check = check_pid_file(layout.pid_file(), {layout.pathbin / "innd"});
    if (check.state != pid_file_state::running) {
        return false;
    }
    report.innd_running = true;
    report.innd_pid = check.pid;
    report.server_mode = server_mode(options, layout, limit);
    const std::string mode = report.server_mode.empty() ? "mode unknown: ctlinnd mode failed" : report.server_mode;
    if (report.server_mode.rfind("Server running", 0) != 0) {
        // Throttled or paused: innd refuses articles, and readers see a 400.
        log_warning("innd (pid " + std::to_string(check.pid) + ") is running but not serving: " + mode);
    }
    report.summary = "innd is running as pid " + std::to_string(check.pid) + " (" + mode + "): nothing recovered";
    return true;
}

outcome remove_leftovers(const inn_layout& layout, const pid_file_check& pid_check, innd_recovery_report& report)
{
    // innd's own sockets in use while its pid file names no live innd: an
    // innd whose pid file was removed. A second one would fail to bind, and
    // its files are not ours to take.
    for (const char* name : {"control", "nntpin"}) {
        const fs::path socket = layout.pathrun / name;
        if (socket_file(socket) && socket_served(socket)) {
            return outcome::failed("a live process still serves " + socket.string() + " although " +
                                   layout.pid_file().string() + " names no running innd (" +
                                   (pid_check.reason.empty() ? std::string("no pid file") : pid_check.reason) +
                                   "): stop that innd first");
        }
    }
    if (pid_check.state == pid_file_state::stale_foreign) {
        // The file is stale either way; the process it names stays untouched.
        log_warning(pid_check.reason);
    }
    report.unclean_shutdown = pid_check.state == pid_file_state::stale_dead ||
                              pid_check.state == pid_file_state::stale_foreign;
    auto result = remove_stale_file(layout.pid_file(), report.removed);
    if (!result.healthy()) {
        return result;
    }
    std::vector<fs::path> sockets{layout.pathrun / "control", layout.pathrun / "nntpin"};
    std::error_code ec;
    for (fs::directory_iterator it(layout.pathrun, ec), end; !ec && it != end; it.increment(ec)) {
        // ctlinnd's reply sockets (ctlinndXXXXXX), left by a ctlinnd killed while it waited.
        if (it->path().filename().string().rfind("ctlinnd", 0) == 0) {
            sockets.push_back(it->path());
        }
    }
    for (const auto& socket : sockets) {
        if (!socket_file(socket)) {
            continue;
        }
        if (socket_served(socket)) {
            log_info("socket " + socket.string() + " is in use: left alone");
            report.live_sockets.push_back(socket);
            continue;
        }
        result = remove_stale_file(socket, report.removed);
        if (!result.healthy()) {
            return result;
        }
    }
    return outcome::ok();
}

outcome ensure_pathrun(const inn_layout& layout, innd_recovery_report& report)
{
    if (directory_exists(layout.pathrun)) {
        return outcome::ok();
    }
    // pathrun is often below /run, which a node that never ran this instance lacks.
    std::error_code ec;
    fs::create_directories(layout.pathrun, ec);
    const passwd* user = ::getpwnam(layout.user.c_str());
    const group* grp = ::getgrnam(layout.group.c_str());
    if (ec || user == nullptr || grp == nullptr || ::chown(layout.pathrun.c_str(), user->pw_uid, grp->gr_gid) != 0 ||
        ::chmod(layout.pathrun.c_str(), 0755) != 0) {
        return outcome::failed("cannot create pathrun " + layout.pathrun.string() + " for " + layout.user + ": " +
                               (ec ? ec.message() : std::string(std::strerror(errno))));
    }
    log_info("created pathrun " + layout.pathrun.string() + " (owner " + layout.user + ")");
    report.pathrun_created = true;
    return outcome::ok();
}

bool non_empty_file(const fs::path& path)
{
    std::error_code ec;
    return fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0 && !ec;
}

outcome check_active(const inn_layout& layout)
{
    // rc.news falls back to active.tmp, then active.old, and renumbers.
    for (const char* name : {"active", "active.tmp", "active.old"}) {
        if (non_empty_file(layout.pathdb / name)) {
            return outcome::ok();
        }
    }
    return outcome::failed("no active file in " + layout.pathdb.string() +
                           ": active, active.tmp and active.old are all missing or empty");
}

// -- reading files in bounded pieces

class read_only_file {
public:
    explicit read_only_file(const fs::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)) {}
    ~read_only_file()
    {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    read_only_file(const read_only_file&) = delete;
    read_only_file& operator=(const read_only_file&) = delete;

    bool is_open() const { return fd_ >= 0; }

    std::uint64_t size() const
    {
        struct stat st {};
        return ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    }

    // Up to `count` bytes at `offset`; fewer at the end of the file.
    std::string read_at(std::uint64_t offset, std::size_t count) const
    {
        std::string data(count, '\0');
        std::size_t got = 0;
        while (got < count) {
            const ssize_t n = ::pread(fd_, data.data() + got, count - got, static_cast<off_t>(offset + got));
            if (n <= 0) {
                break;
            }
            got += static_cast<std::size_t>(n);
        }
        data.resize(got);
        return data;
    }

private:
    int fd_;
};

// The line starting at `offset` of a file, without its newline; at most 1 KiB.
std::string line_at(const read_only_file& file, std::uint64_t offset)
{
    std::string text = file.read_at(offset, 1024);
    return text.substr(0, text.find('\n'));
}

bool starts_a_line(const read_only_file& file, std::uint64_t offset)
{
    return offset == 0 || file.read_at(offset - 1, 1) == "\n";
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    const char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return upper >= 'A' && upper <= 'F' ? upper - 'A' + 10 : -1;
}

// The dbz hash record of a well-formed history line: the first 6 bytes of its "[MD5]".
std::string line_hash(std::string_view line)
{
    std::string bytes;
    for (std::size_t i = 0; i < hash_bytes; ++i) {
        bytes.push_back(static_cast<char>(hex_value(line[1 + 2 * i]) * 16 + hex_value(line[2 + 2 * i])));
    }
    return bytes;
}

// What the .dir file says: "dbz 6 tsize valuesize fillpercent", then the used counts.
struct dbz_config {
    long table_size = 0;
    long value_size = 0;
    std::uint64_t most_used = 0;
};

bool read_dbz_config(const fs::path& dir_file, dbz_config& config, std::string& why)
{
    std::ifstream in(dir_file);
    if (!in) {
        why = "dbz file " + dir_file.string() + " is missing";
        return false;
    }
    std::string magic;
    int version = 0;
    long fill_percent = 0;
    in >> magic >> version >> config.table_size >> config.value_size >> fill_percent;
    if (!in || magic != "dbz" || version != 6 || config.table_size < 2 || config.value_size <= 0) {
        why = "dbz file " + dir_file.string() + " is not a dbz version 6 header";
        return false;
    }
    long used = 0;
    while (in >> used) {
        config.most_used = std::max(config.most_used, static_cast<std::uint64_t>(std::max(used, 0L)));
    }
    return true;
}

// One pass over the text's last tail_bytes: its whole lines by offset.
struct text_tail {
    std::uint64_t start = 0;  // offset of the first whole line in the tail
    std::unordered_map<std::uint64_t, std::string> hash_at;  // line offset -> dbz hash record
    std::optional<std::uint64_t> newest;                      // offset of the last line
};

// The walk over .index and .hash, checking every occupied slot against the text.
class index_walk {
public:
    index_walk(const read_only_file& text, const text_tail& tail, history_check& result)
        : text_(text), tail_(tail), result_(result), text_size_(text.size())
    {
    }

    void visit(std::uint64_t offset, const std::string& hash)
    {
        ++result_.entries;
        if (offset >= text_size_) {
            max_beyond_ = std::max(max_beyond_, offset);
            return;
        }
        if (offset >= tail_.start) {
            const auto line = tail_.hash_at.find(offset);
            if (line == tail_.hash_at.end()) {
                note_index("an index entry points into the middle of a history line (byte " + std::to_string(offset) +
                           ")");
            } else if (line->second != hash) {
                note_index("the index entry for history byte " + std::to_string(offset) +
                           " carries another message-ID hash than the line there");
            } else if (tail_.newest && offset == *tail_.newest) {
                newest_indexed_ = true;
            }
            return;
        }
        if (sampled_ == sampled_entries) {
            return;
        }
        ++sampled_;
        const std::string line = line_at(text_, offset);
        if (!starts_a_line(text_, offset) || !well_formed_history_line(line)) {
            note_index("an index entry points at no history line (byte " + std::to_string(offset) + ")");
        } else if (line_hash(line) != hash) {
            note_index("the index entry for history byte " + std::to_string(offset) +
                       " carries another message-ID hash than the line there");
        }
    }

    void finish(const fs::path& history)
    {
        if (max_beyond_ > 0 || (result_.entries > 0 && text_size_ == 0)) {
            // Checked first: a cut text explains every other symptom.
            result_.text_damaged = true;
            result_.finding = history.string() + " is " + std::to_string(text_size_) +
                              " bytes, but its dbz index points up to byte " + std::to_string(max_beyond_) +
                              ": the text was cut short";
            return;
        }
        if (!index_finding_.empty()) {
            result_.index_damaged = true;
            result_.finding = index_finding_;
            return;
        }
        if (tail_.newest && !newest_indexed_) {
            result_.index_damaged = true;
            result_.finding = "the newest entry of " + history.string() + " (byte " + std::to_string(*tail_.newest) +
                              ") is not in its dbz index: the index is older than the text";
        }
    }

private:
    void note_index(std::string finding)
    {
        if (index_finding_.empty()) {
            index_finding_ = std::move(finding);
        }
    }

    const read_only_file& text_;
    const text_tail& tail_;
    history_check& result_;
    std::uint64_t text_size_;
    std::uint64_t max_beyond_ = 0;
    std::size_t sampled_ = 0;
    bool newest_indexed_ = false;
    std::string index_finding_;
};

// Reads the text's tail; notes text damage in `result`.
text_tail read_tail(const read_only_file& text, const fs::path& history, history_check& result)
{
    text_tail tail;
    const std::uint64_t size = text.size();
    const std::uint64_t window = std::min<std::uint64_t>(size, tail_bytes);
    // One byte more, to know whether the window starts at a line start.
    const std::uint64_t from = size - window;
    const std::string data = text.read_at(from > 0 ? from - 1 : 0, static_cast<std::size_t>(window + (from > 0)));
    if (size > 0 && (data.empty() || data.back() != '\n')) {
        result.text_damaged = true;
        result.finding = history.string() + " ends in the middle of a line (" + std::to_string(size) +
                         " bytes, no final newline): it was cut short";
        return tail;
    }
    std::size_t pos = 0;
    if (from > 0) {
        pos = data.find('\n') + 1;
    }
    tail.start = (from > 0 ? from - 1 : 0) + pos;
    while (pos < data.size()) {
        const std::size_t end = data.find('\n', pos);
        const std::string_view line(data.data() + pos, end - pos);
        const std::uint64_t offset = (from > 0 ? from - 1 : 0) + pos;
        if (!well_formed_history_line(line)) {
            result.text_damaged = true;
            result.finding = "malformed line at byte " + std::to_string(offset) + " of " + history.string() + ": " +
                             printable_excerpt(line, 80);
            return tail;
        }
        tail.hash_at[offset] = line_hash(line);
        tail.newest = offset;
        pos = end + 1;
    }
    return tail;
}

std::uint64_t file_size_or_zero(const fs::path& path)
{
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    return ec ? 0 : size;
}

void check_index_files(const fs::path& history, const read_only_file& text, const text_tail& tail,
                       const deadline& limit, history_check& result)
{
    const fs::path dir_file = history.string() + ".dir";
    dbz_config config;
    std::string why;
    if (!read_dbz_config(dir_file, config, why)) {
        result.index_damaged = true;
        result.finding = why;
        return;
    }
    result.size_hint = config.most_used;
    if (config.value_size != dbz_value_size) {
        // Another dbz build (tagged hash, 32-bit offsets): not a layout this
        // walk knows. innd checks its own files as it opens them.
        log_warning("dbz value size " + std::to_string(config.value_size) + " in " + dir_file.string() +
                    " is not the hisv6 layout this check knows: index not walked");
        return;
    }
    const fs::path index_path = history.string() + ".index";
    const fs::path hash_path = history.string() + ".hash";
    const read_only_file index(index_path);
    const read_only_file hashes(hash_path);
    for (const auto& [file, path] : {std::pair{&index, index_path}, std::pair{&hashes, hash_path}}) {
        if (!file->is_open()) {
            result.index_damaged = true;
            result.finding = "dbz file " + path.string() + " is missing or unreadable";
            return;
        }
    }
    const auto table = static_cast<std::uint64_t>(config.table_size);
    if (index.size() % index_value_bytes != 0 || index.size() > table * index_value_bytes ||
        hashes.size() % hash_bytes != 0 || hashes.size() > table * hash_bytes) {
        result.index_damaged = true;
        result.finding = "dbz files " + index_path.string() + " (" + std::to_string(index.size()) + " bytes) and " +
                         hash_path.string() + " (" + std::to_string(hashes.size()) +
                         " bytes) do not fit a table of " + std::to_string(table) + " entries";
        return;
    }

    index_walk walk(text, tail, result);
    const std::string empty(hash_bytes, '\0');
    for (std::uint64_t first = 0; first < table; first += walk_slots) {
        if (limit.passed()) {
            throw check_failure(outcome::failed("deadline passed while checking the dbz index of " +
                                                history.string()));
        }
        const std::uint64_t count = std::min<std::uint64_t>(walk_slots, table - first);
        const std::string hash_chunk = hashes.read_at(first * hash_bytes, static_cast<std::size_t>(count * hash_bytes));
        const std::string index_chunk =
            index.read_at(first * index_value_bytes, static_cast<std::size_t>(count * index_value_bytes));
        // Short files end in empty slots (dbz writes them sparsely).
        const std::uint64_t present = hash_chunk.size() / hash_bytes;
        for (std::uint64_t slot = 0; slot < present; ++slot) {
            // Most slots are empty: compared in place, copied only when used.
            const char* record = hash_chunk.data() + slot * hash_bytes;
            if (std::memcmp(record, empty.data(), hash_bytes) == 0) {
                continue;
            }
            const std::string hash(record, hash_bytes);
            off_t value = 0;
            const auto at = static_cast<std::size_t>(slot * index_value_bytes);
            if (at + index_value_bytes <= index_chunk.size()) {
                std::memcpy(&value, index_chunk.data() + at, index_value_bytes);
            }
            if (value < 0) {
                walk.visit(std::numeric_limits<std::uint64_t>::max(), hash);
                continue;
            }
            walk.visit(static_cast<std::uint64_t>(value), hash);
        }
    }
    walk.finish(history);
}

// -- repair

// Lines of `file`, counted within `limit`.
std::uint64_t count_lines(const fs::path& file, const deadline& limit)
{
    const read_only_file text(file);
    std::uint64_t lines = 0;
    const std::uint64_t size = text.size();
    for (std::uint64_t offset = 0; offset < size; offset += copy_chunk) {
        if (limit.passed()) {
            throw check_failure(outcome::failed("deadline passed while counting the lines of " + file.string()));
        }
        const std::string chunk = text.read_at(offset, copy_chunk);
        lines += static_cast<std::uint64_t>(std::count(chunk.begin(), chunk.end(), '\n'));
    }
    return lines;
}

// Appends the remembered entries (well-formed lines without a storage
// token: rejected or expired articles) of `old_text` to `new_text`, as
// makehistory(8) advises; the spool cannot tell what was remembered.
std::uint64_t keep_remembered(const fs::path& old_text, const fs::path& new_text, const deadline& limit)
{
    std::ifstream in(old_text, std::ios::binary);
    std::ofstream out(new_text, std::ios::binary | std::ios::app);
    if (!out) {
        throw check_failure(outcome::failed("cannot append to " + new_text.string()));
    }
    std::uint64_t kept = 0;
    std::string line;
    for (std::uint64_t seen = 0; std::getline(in, line); ++seen) {
        if (seen % 65536 == 0 && limit.passed()) {
            throw check_failure(outcome::failed("deadline passed while copying remembered entries of " +
                                                old_text.string()));
        }
        if (well_formed_history_line(line) && std::count(line.begin(), line.end(), '\t') == 1) {
            out << line << '\n';
            ++kept;
        }
    }
    out.flush();
    if (!out) {
        throw check_failure(outcome::failed("cannot write " + new_text.string()));
    }
    return kept;
}

outcome run_makedbz(const innd_recovery_options& options, const inn_layout& layout, const fs::path& text,
                    bool default_name, const deadline& limit)
{
    const std::uint64_t lines = std::max<std::uint64_t>(count_lines(text, limit), 1);
    std::vector<std::string> args{"-i", "-o", "-s", std::to_string(lines)};
    if (!default_name) {
        args.insert(args.end(), {"-f", text.string()});
    }
    const auto run = run_inn_tool(options, layout, "makedbz", args, limit);
    if (!run.succeeded()) {
        return inn_tool_failure("makedbz", run);
    }
    log_info("makedbz indexed " + std::to_string(lines) + " history entries of " + text.string());
    return outcome::ok();
}

outcome rebuild_index(const innd_recovery_options& options, const inn_layout& layout, const deadline& limit)
{
    auto result = require_tool(layout, "makedbz");
    if (!result.healthy()) {
        return result;
    }
    log_warning("rebuilding the dbz index of " + layout.history().string() + " with makedbz");
    return run_makedbz(options, layout, layout.history(), true, limit);
}

outcome rename_file(const fs::path& from, const fs::path& to)
{
    if (::rename(from.c_str(), to.c_str()) != 0) {
        return outcome::failed("cannot rename " + from.string() + " to " + to.string() + ": " + std::strerror(errno));
    }
    return outcome::ok();
}

const std::array<const char*, 3> dbz_suffixes{".dir", ".index", ".hash"};

// `base`, or base.1, base.2, ... for the first name not taken: a second
// rebuild in the same second must not overwrite what the first one kept.
fs::path kept_name(const std::string& base)
{
    fs::path name = base;
    for (int n = 1; fs::exists(name); ++n) {
        name = base + "." + std::to_string(n);
    }
    return name;
}

outcome rebuild_history(const innd_recovery_options& options, const inn_layout& layout, const history_check& found,
                        const deadline& limit, innd_recovery_report& report)
{
    for (const char* tool : {"makehistory", "makedbz"}) {
        auto result = require_tool(layout, tool);
        if (!result.healthy()) {
            return result;
        }
    }
    const fs::path history = layout.history();
    const fs::path rebuilt = history.string() + ".n";
    // A rebuild that an earlier start could not finish.
    for (const std::string suffix : {"", ".dir", ".index", ".hash"}) {
        std::error_code ignored;
        fs::remove(rebuilt.string() + suffix, ignored);
    }
    // makehistory keeps its own dbz while it scans; one too small for the
    // spool fails it, so aim well above what the old files suggest.
    const std::uint64_t estimate = std::max({2 * found.size_hint, file_size_or_zero(history) / 64, min_history_size});
    log_warning("rebuilding " + history.string() + " from the spool with makehistory");
    const auto run = run_inn_tool(options, layout, "makehistory",
                                  {"-f", rebuilt.filename().string(), "-s", std::to_string(estimate)}, limit);
    if (!run.succeeded()) {
        return inn_tool_failure("makehistory", run);
    }
    const std::uint64_t kept = fs::exists(history) ? keep_remembered(history, rebuilt, limit) : 0;
    log_info("makehistory rebuilt " + rebuilt.string() + "; kept " + std::to_string(kept) +
             " remembered entries of the old text");
    auto result = run_makedbz(options, layout, rebuilt, false, limit);
    if (!result.healthy()) {
        return result;
    }
    if (fs::exists(history)) {
        report.damaged_history = kept_name(history.string() + ".damaged-" + utc_time_stamp());
        result = rename_file(history, report.damaged_history);
        if (!result.healthy()) {
            return result;
        }
        log_info("kept the damaged history text as " + report.damaged_history.string());
    }
    for (const char* suffix : dbz_suffixes) {
        result = rename_file(rebuilt.string() + suffix, history.string() + suffix);
        if (!result.healthy()) {
            return result;
        }
    }
    return rename_file(rebuilt, history);
}

outcome recover_history(const innd_recovery_options& options, const inn_layout& layout, const deadline& limit,
                        innd_recovery_report& report)
{
    if (layout.hismethod != "hisv6") {
        log_warning("history method '" + layout.hismethod + "' is not checked (only hisv6 is)");
        return outcome::ok();
    }
    const history_check found = check_history_database(layout.history(), limit);
    report.history_entries = found.entries;
    if (found.finding.empty()) {
        log_info("history database " + layout.history().string() + " is intact (" +
                 count_of(found.entries, "entry", "entries") + ")");
        return outcome::ok();
    }
    report.history_finding = found.finding;
    log_warning("history database damaged: " + found.finding);
    outcome result = found.text_damaged ? rebuild_history(options, layout, found, limit, report)
                                        : rebuild_index(options, layout, limit);
    if (!result.healthy()) {
        return result;
    }
    report.repair = found.text_damaged ? history_repair::history_rebuilt : history_repair::index_rebuilt;
    const history_check again = check_history_database(layout.history(), limit);
    report.history_entries = again.entries;
    if (!again.finding.empty()) {
        return outcome::failed("history database still damaged after its rebuild: " + again.finding);
    }
    return outcome::ok();
}

std::string recovered_summary(const innd_recovery_report& report)
{
    std::ostringstream summary;
    summary << "recovered innd: ";
    if (report.unclean_shutdown) {
        summary << "unclean shutdown (innd.pid left behind); ";
    }
    if (report.pathrun_created) {
        summary << "created pathrun; ";
    }
    summary << "removed " << count_of(report.removed.size(), "stale file", "stale files");
    if (!report.live_sockets.empty()) {
        summary << "; " << count_of(report.live_sockets.size(), "socket", "sockets") << " in use left alone";
    }
    switch (report.repair) {
    case history_repair::none:
        summary << "; history intact (" << count_of(report.history_entries, "entry", "entries") << ")";
        break;
    case history_repair::index_rebuilt:
        summary << "; history index rebuilt with makedbz (" << report.history_finding << ")";
        break;
    case history_repair::history_rebuilt:
        summary << "; history rebuilt from the spool with makehistory and makedbz ("
                << count_of(report.history_entries, "entry", "entries") << "; " << report.history_finding << ")";
        if (!report.damaged_history.empty()) {
            summary << ", damaged text kept as " << report.damaged_history.string();
        }
        break;
    }
    summary << "; " << quorum_summary(report.quorum);
    return summary.str();
}

// Undoes sh quoting: 'single quoted', "double quoted" and backslash escapes.
std::string shell_unquote(std::string_view text)
{
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\'') {
            const auto end = text.find('\'', i + 1);
            out.append(text.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
            if (end == std::string_view::npos) {
                break;
            }
            i = end;
        } else if (c == '\\' && i + 1 < text.size()) {
            out.push_back(text[++i]);
        } else if (c != '"') {
            out.push_back(c);
        }
    }
    return out;
}

} // namespace

std::map<std::string, std::string> parse_innconfval_shell(const std::string& text)
{
    std::map<std::string, std::string> values;
    for (const auto& line : split_lines(text)) {
        const auto equals = line.find('=');
        if (equals == std::string::npos || equals == 0) {
            continue;
        }
        const std::string name = line.substr(0, equals);
        std::string_view value(line);
        value.remove_prefix(equals + 1);
        // "...; export NAME;" (the last line may lack the final semicolon)
        const auto export_at = value.rfind("; export " + name);
        if (export_at != std::string_view::npos) {
            value = value.substr(0, export_at);
        }
        std::string key = name;
        std::transform(key.begin(), key.end(), key.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        values[key] = shell_unquote(value);
    }
    return values;
}

bool well_formed_history_line(std::string_view line)
{
    // "[" 32 hex "]" TAB
    if (line.size() < 35 || line[0] != '[' || line[33] != ']' || line[34] != '\t') {
        return false;
    }
    for (std::size_t i = 1; i < 33; ++i) {
        if (hex_value(line[i]) < 0) {
            return false;
        }
    }
    std::string_view rest = line.substr(35);
    const auto tab = rest.find('\t');
    const std::string_view times = rest.substr(0, tab);
    // arrived~expires~posted, expires "-" when the article carries none
    const auto first = times.find('~');
    const auto second = first == std::string_view::npos ? first : times.find('~', first + 1);
    if (second == std::string_view::npos) {
        return false;
    }
    const auto digits = [](std::string_view field) {
        return !field.empty() && std::all_of(field.begin(), field.end(), [](unsigned char c) { return std::isdigit(c); });
    };
    const std::string_view expires = times.substr(first + 1, second - first - 1);
    if (!digits(times.substr(0, first)) || !(expires == "-" || digits(expires)) || !digits(times.substr(second + 1))) {
        return false;
    }
    if (tab == std::string_view::npos) {
        return true;
    }
    const std::string_view token = rest.substr(tab + 1);
    return token.size() >= 2 && token.front() == '@' && token.back() == '@' &&
           token.find_first_of(" \t") == std::string_view::npos;
}

history_check check_history_database(const fs::path& history, const deadline& limit)
{
    history_check result;
    const read_only_file text(history);
    if (!text.is_open()) {
        result.text_damaged = true;
        result.finding = "history file " + history.string() + " is missing or unreadable: " + std::strerror(errno);
        // The .dir file still says how big the rebuilt table should be.
        dbz_config config;
        std::string ignored;
        if (read_dbz_config(history.string() + ".dir", config, ignored)) {
            result.size_hint = config.most_used;
        }
        return result;
    }
    const text_tail tail = read_tail(text, history, result);
    if (result.text_damaged) {
        dbz_config config;
        std::string ignored;
        if (read_dbz_config(history.string() + ".dir", config, ignored)) {
            result.size_hint = config.most_used;
        }
        return result;
    }
    check_index_files(history, text, tail, limit, result);
    return result;
}

std::string innd_mode_line(const std::string& ctlinnd_output)
{
    for (const auto& line : split_lines(ctlinnd_output)) {
        const std::string text = trim(line);
        if (text.rfind("Server ", 0) == 0) {
            return text;
        }
    }
    return {};
}

innd_recovery_report recover_innd(const innd_recovery_options& options, const quorum_check& quorum,
                                  const deadline& limit)
{
    innd_recovery_report report;
    report.result = gate_on_quorum(quorum, limit, "innd", report.quorum);
    if (!report.result.healthy()) {
        return report;
    }

    std::error_code ec;
    if (!fs::is_regular_file(options.inn_conf, ec)) {
        report.result = {ocf_code::err_installed, "inn.conf " + options.inn_conf.string() + " does not exist"};
        return report;
    }
    inn_layout layout;
    report.result = read_layout(options, limit, layout);
    if (!report.result.healthy()) {
        return report;
    }
    for (const auto& [name, dir] : {std::pair{"pathdb", layout.pathdb}, std::pair{"patharticles", layout.patharticles}}) {
        if (!directory_exists(dir)) {
            // Typically the shared news store is not mounted on this node.
            report.result = {ocf_code::err_installed, std::string(name) + " " + dir.string() + " does not exist"};
            return report;
        }
    }
    report.result = require_tool(layout, "innd");
    if (!report.result.healthy()) {
        return report;
    }

    pid_file_check pid_check;
    if (directory_exists(layout.pathrun) && find_live_innd(options, layout, limit, report, pid_check)) {
        log_info(report.summary);
        return report;
    }
    report.result = ensure_pathrun(layout, report);
    if (report.result.healthy()) {
        report.result = remove_leftovers(layout, pid_check, report);
    }
    if (report.result.healthy()) {
        report.result = check_active(layout);
    }
    if (!report.result.healthy()) {
        return report;
    }
    try {
        report.result = recover_history(options, layout, limit, report);
    } catch (const check_failure& failure) {
        report.result = failure.result();
    }
    if (!report.result.healthy()) {
        return report;
    }
    if (limit.passed()) {
        report.result = outcome::failed("deadline passed during innd store recovery");
        return report;
    }
    report.summary = recovered_summary(report);
    log_info(report.summary);
    return report;
}

} // namespace msg
