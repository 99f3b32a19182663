// msg::recover_innd and its history checks against a real INN 2.7 instance
// built in a temp dir (stock-agents-measured.md section 1.4): its own
// inn.conf, the Debian package's tools, history indexed by the real makedbz.
#include "msg/child_process.hpp"
#include "msg/innd_recovery.hpp"
#include "msg/process_identity.hpp"

#include "probe_checks.hpp"
#include "recovery_checks.hpp"
#include "spawn_helper.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using msg::deadline;
using msg::history_repair;
using msg::ocf_code;
using msg::quorum_state;
using msg::quorum_status;
using msg_test::contains;

namespace {

const fs::path inn_bin = "/usr/lib/news/bin";

using msg_test::dead_pid;
using msg_test::fixed_quorum;

const auto standalone = msg_test::standalone_quorum();

// A history(5) line for article `n`: a unique hash, times, and a token
// unless `remembered` (a rejected article: no token).
std::string history_line(int n, bool remembered = false)
{
    char hash[33];
    std::snprintf(hash, sizeof hash, "%08X%08X%08X%08X", 0x5EED0000 + n, n * 7919, n * 104729, 0xC0FFEE ^ n);
    std::ostringstream line;
    line << '[' << hash << "]\t" << 1795695600 + n << "~-~" << 1795695600 + n;
    if (!remembered) {
        char token[48];
        std::snprintf(token, sizeof token, "@0500000000%08X000000000001%06X@", n, n);
        line << '\t' << token;
    }
    return line.str();
}

// A bound unix socket of `type` at `path`; its descriptor, closed by the caller.
int bind_unix(const fs::path& path, int type)
{
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << path;
    if (type == SOCK_STREAM) {
        ::listen(fd, 1);
    }
    return fd;
}

// A socket file nobody serves any more, as a killed daemon leaves it.
void stale_socket(const fs::path& path, int type)
{
    ::close(bind_unix(path, type));
}

class InndRecovery : public ::testing::Test {
protected:
    void SetUp() override
    {
        // rc.news's innd daemonizes; as subreaper this test reaps it.
        ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        ASSERT_TRUE(fs::exists(inn_bin / "innd")) << "the inn2 package is not installed";
        news_ = ::getpwnam("news");
        ASSERT_NE(news_, nullptr);
        char templ[] = "/tmp/msg-innd-recovery-test.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        base_ = templ;
        fs::permissions(base_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
        fs::copy("/etc/news", base_ / "etc", fs::copy_options::recursive);
        for (const char* dir : {"db", "http", "log", "run", "spool/incoming/tmp", "spool/outgoing", "spool/overview",
                                "spool/archive", "spool/articles"}) {
            fs::create_directories(base_ / dir);
        }
        port_ = msg_test::free_port();
        write_inn_conf();
        fs::copy_file("/usr/lib/news/examples/active", db() / "active");
        fs::copy_file("/usr/lib/news/examples/newsgroups", db() / "newsgroups");
        for (const char* name : {"history", "active.times", ".news.daily"}) {
            std::ofstream(db() / name).flush();
        }
        chown_tree();
        options_.inn_conf = inn_conf();
    }

    void TearDown() override
    {
        const auto check = msg::check_pid_file(base_ / "run" / "innd.pid", {inn_bin / "innd"});
        if (check.state == msg::pid_file_state::running) {
            ::kill(check.pid, SIGKILL);
            for (int i = 0; i < 100 && msg::process_alive(check.pid); ++i) {
                ::waitpid(-1, nullptr, WNOHANG);
                std::this_thread::sleep_for(20ms);
            }
        }
        fs::remove_all(base_);
    }

    fs::path inn_conf() const { return base_ / "etc" / "inn.conf"; }
    fs::path db() const { return base_ / "db"; }
    fs::path run_dir() const { return base_ / "run"; }
    fs::path history() const { return db() / "history"; }

    void write_inn_conf(const std::string& extra = "") const
    {
        std::ofstream conf(inn_conf(), std::ios::trunc);
        conf << "mta: \"/usr/sbin/sendmail -oi -oem %s\"\norganization: \"msg-recover test\"\n"
             << "ovmethod: tradindexed\nhismethod: hisv6\npathhost: news.example.com\npathnews: /usr/lib/news\n"
             << "domain: example.com\nport: " << port_ << "\nbindaddress: 127.0.0.1\ndoinnwatch: false\n"
             << "pathbin: " << inn_bin.string() << "\npathcontrol: " << (inn_bin / "control").string() << "\n";
        for (const auto& [key, dir] : std::vector<std::pair<std::string, std::string>>{
                 {"pathfilter", "etc/filter"}, {"pathdb", "db"}, {"pathetc", "etc"}, {"pathhttp", "http"},
                 {"pathincoming", "spool/incoming"}, {"pathlog", "log"}, {"pathoutgoing", "spool/outgoing"},
                 {"pathoverview", "spool/overview"}, {"pathrun", "run"}, {"pathspool", "spool"},
                 {"pathtmp", "spool/incoming/tmp"}, {"patharchive", "spool/archive"},
                 {"patharticles", "spool/articles"}}) {
            conf << key << ": " << (base_ / dir).string() << "\n";
        }
        conf << extra;
    }

    void chown_tree() const
    {
        ASSERT_EQ(::chown(base_.c_str(), news_->pw_uid, news_->pw_gid), 0);
        for (const auto& entry : fs::recursive_directory_iterator(base_)) {
            ASSERT_EQ(::lchown(entry.path().c_str(), news_->pw_uid, news_->pw_gid), 0) << entry.path();
        }
    }

    // Runs an INN tool as news with this instance's INNCONF; asserts success.
    msg::child_result inn_tool(const std::string& tool, const std::vector<std::string>& args) const
    {
        msg::child_command command;
        command.program = "setpriv";
        command.args = {"--reuid=news", "--regid=news", "--init-groups", "--", (inn_bin / tool).string()};
        command.args.insert(command.args.end(), args.begin(), args.end());
        command.extra_env = {{"INNCONF", inn_conf().string()}};
        auto result = msg::run_child(command, deadline::after(30s));
        EXPECT_TRUE(result.succeeded()) << tool << " " << result.describe_end() << ": " << result.err << result.out;
        return result;
    }

    // history with `lines` entries (every seventh remembered), indexed by makedbz.
    void write_history(int lines) const
    {
        std::ofstream text(history(), std::ios::trunc);
        for (int n = 1; n <= lines; ++n) {
            text << history_line(n, n % 7 == 0) << '\n';
        }
        text.close();
        inn_tool("makedbz", {"-i", "-o", "-s", std::to_string(lines)});
    }

    void append(const fs::path& file, const std::string& text) const
    {
        std::ofstream out(file, std::ios::app | std::ios::binary);
        out << text;
    }

    pid_t start_innd() const
    {
        msg::child_command command;
        command.program = "setpriv";
        command.args = {"--reuid=news", "--regid=news", "--init-groups", "--", (inn_bin / "rc.news").string()};
        command.extra_env = {{"INNCONF", inn_conf().string()}};
        const auto run = msg::run_child(command, deadline::after(30s));
        EXPECT_TRUE(run.succeeded()) << run.out << run.err;
        for (int i = 0; i < 100; ++i) {
            const auto check = msg::check_pid_file(run_dir() / "innd.pid", {inn_bin / "innd"});
            if (check.state == msg::pid_file_state::running && fs::exists(run_dir() / "control")) {
                return check.pid;
            }
            std::this_thread::sleep_for(50ms);
        }
        ADD_FAILURE() << "innd did not start: " << run.out << run.err;
        return 0;
    }

    msg::innd_recovery_report recover(const msg::quorum_check& quorum = standalone,
                                      std::chrono::milliseconds budget = 30s) const
    {
        return msg::recover_innd(options_, quorum, deadline::after(budget));
    }

    fs::path base_;
    const passwd* news_ = nullptr;
    std::uint16_t port_ = 0;
    msg::innd_recovery_options options_;
};

// -- parsing

TEST(InnconfvalShell, UndoesShellQuotingAndLowercasesNames)
{
    const auto values = msg::parse_innconfval_shell(
        "PATHRUN='/run/news'; export PATHRUN;\n"
        "ORGANIZATION='It'\\''s a \"test\" \\\\ x'; export ORGANIZATION;\n"
        "PORT=119; export PORT;\n"
        "EXTRAOVERVIEWHIDDEN=''; export EXTRAOVERVIEWHIDDEN;\n"
        "VERSION='INN 2.7.1'; export VERSION\n");
    EXPECT_EQ(values.at("pathrun"), "/run/news");
    EXPECT_EQ(values.at("organization"), "It's a \"test\" \\\\ x");
    EXPECT_EQ(values.at("port"), "119");
    EXPECT_EQ(values.at("extraoverviewhidden"), "");
    EXPECT_EQ(values.at("version"), "INN 2.7.1");
}

TEST(HistoryLine, AcceptsStoredAndRememberedEntriesOnly)
{
    EXPECT_TRUE(msg::well_formed_history_line(
        "[15028C9ECC092DB21F9065964374B11B]\t1795695608~-~1795695608\t@050000000008000000000000000100000000@"));
    EXPECT_TRUE(msg::well_formed_history_line("[15028C9ECC092DB21F9065964374B11B]\t1795695608~1796000000~1795695608"));
    EXPECT_TRUE(msg::well_formed_history_line(history_line(3)));
    EXPECT_TRUE(msg::well_formed_history_line(history_line(7, true)));
    for (const char* bad : {"", "[15028C9ECC092DB21F9065964374B11B]", "[15028C9ECC092DB21F9065964374B11B]\t17956",
                            "[15028C9ECC092DB21F9065964374B11B]\t1795695608~-~1795695608\t@0500",
                            "[XYZ28C9ECC092DB21F9065964374B11B]\t1795695608~-~1795695608",
                            "[15028C9ECC092DB21F9065964374B11B]\t1795695608~x~1795695608"}) {
        EXPECT_FALSE(msg::well_formed_history_line(bad)) << bad;
    }
}

TEST(CtlinndMode, FirstServerLine)
{
    EXPECT_EQ(msg::innd_mode_line("Server throttled disk full\nAllowing remote connections\n"),
              "Server throttled disk full");
    EXPECT_EQ(msg::innd_mode_line("Server running\n"), "Server running");
    EXPECT_EQ(msg::innd_mode_line("ctlinnd: cannot connect\n"), "");
}

// -- the history check on files the real makedbz wrote

TEST_F(InndRecovery, IntactHistoryPasses)
{
    write_history(200);
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_EQ(found.finding, "");
    EXPECT_FALSE(found.text_damaged);
    EXPECT_FALSE(found.index_damaged);
    EXPECT_EQ(found.entries, 200u);
}

TEST_F(InndRecovery, EmptyHistoryOfAFreshInstancePasses)
{
    write_history(0);
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_EQ(found.finding, "");
    EXPECT_EQ(found.entries, 0u);
}

TEST_F(InndRecovery, TextCutMidLineIsDamagedText)
{
    write_history(50);
    fs::resize_file(history(), fs::file_size(history()) - 30);
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.text_damaged);
    EXPECT_TRUE(contains(found.finding, "ends in the middle of a line"));
    EXPECT_EQ(found.size_hint, 50u);
}

TEST_F(InndRecovery, TextCutAtALineBoundaryIsDamagedText)
{
    write_history(50);
    const std::string first_lines = history_line(1) + "\n" + history_line(2) + "\n";
    fs::resize_file(history(), first_lines.size());
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.text_damaged);
    EXPECT_TRUE(contains(found.finding, "its dbz index points up to byte"));
}

TEST_F(InndRecovery, GarbageAtTheEndIsDamagedText)
{
    write_history(50);
    append(history(), "this is not a history line\n");
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.text_damaged);
    EXPECT_TRUE(contains(found.finding, "malformed line at byte"));
}

TEST_F(InndRecovery, EntriesMissingFromTheIndexAreADamagedIndex)
{
    // What a crash leaves when innd wrote the text but not yet its index.
    write_history(50);
    append(history(), history_line(51) + "\n");
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_FALSE(found.text_damaged);
    EXPECT_TRUE(found.index_damaged);
    EXPECT_TRUE(contains(found.finding, "is not in its dbz index: the index is older than the text"));
}

TEST_F(InndRecovery, ZeroedIndexIsADamagedIndex)
{
    write_history(50);
    const auto size = fs::file_size(db() / "history.index");
    std::ofstream(db() / "history.index", std::ios::trunc | std::ios::binary) << std::string(size, '\0');
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.index_damaged);
    EXPECT_TRUE(contains(found.finding, "carries another message-ID hash than the line there"));
}

TEST_F(InndRecovery, MissingOrGarbledDbzFilesAreADamagedIndex)
{
    write_history(20);
    fs::remove(db() / "history.hash");
    auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.index_damaged);
    EXPECT_TRUE(contains(found.finding, "history.hash is missing"));
    std::ofstream(db() / "history.dir", std::ios::trunc) << "garbage\n";
    found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.index_damaged);
    EXPECT_TRUE(contains(found.finding, "is not a dbz version 6 header"));
}

TEST_F(InndRecovery, MissingTextIsDamagedText)
{
    write_history(20);
    fs::remove(history());
    const auto found = msg::check_history_database(history(), deadline::after(10s));
    EXPECT_TRUE(found.text_damaged);
    EXPECT_TRUE(contains(found.finding, "is missing"));
}

// -- recovery

TEST_F(InndRecovery, StaleFilesOfADeadInndAreRemovedAndAnUncleanShutdownReported)
{
    write_history(10);
    std::ofstream(run_dir() / "innd.pid") << dead_pid() << "\n";
    stale_socket(run_dir() / "control", SOCK_DGRAM);
    stale_socket(run_dir() / "nntpin", SOCK_STREAM);
    stale_socket(run_dir() / "ctlinnd4bX9zQ", SOCK_DGRAM);
    // A ctlinnd still waiting for its answer keeps its socket.
    const int waiting = bind_unix(run_dir() / "ctlinndLive01", SOCK_DGRAM);

    const auto report = recover();
    ::close(waiting);
    ASSERT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_TRUE(report.unclean_shutdown);
    EXPECT_EQ(report.removed.size(), 4u);
    EXPECT_FALSE(fs::exists(run_dir() / "innd.pid"));
    EXPECT_FALSE(fs::exists(run_dir() / "control"));
    EXPECT_FALSE(fs::exists(run_dir() / "ctlinnd4bX9zQ"));
    EXPECT_TRUE(fs::exists(run_dir() / "ctlinndLive01"));
    EXPECT_EQ(report.live_sockets, std::vector<fs::path>{run_dir() / "ctlinndLive01"});
    EXPECT_EQ(report.summary, "recovered innd: unclean shutdown (innd.pid left behind); removed 4 stale files; "
                              "1 socket in use left alone; history intact (10 entries); standalone (no corosync)");
}

TEST_F(InndRecovery, CleanInstanceIsNotAnUncleanShutdown)
{
    write_history(3);
    const auto report = recover();
    ASSERT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_FALSE(report.unclean_shutdown);
    EXPECT_EQ(report.summary, "recovered innd: removed 0 stale files; history intact (3 entries); "
                              "standalone (no corosync)");
}

TEST_F(InndRecovery, PidFileOfAStrangerIsRemovedWithoutSignallingIt)
{
    write_history(3);
    const pid_t stranger = ::fork();
    if (stranger == 0) {
        ::pause();
        ::_exit(0);
    }
    std::ofstream(run_dir() / "innd.pid") << stranger << "\n";
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_TRUE(report.unclean_shutdown);
    EXPECT_TRUE(msg::process_alive(stranger));
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);
}

TEST_F(InndRecovery, LiveControlSocketWithoutPidFileRefusesToTouchAnything)
{
    write_history(3);
    const int control = bind_unix(run_dir() / "control", SOCK_DGRAM);
    std::ofstream(run_dir() / "innd.pid") << dead_pid() << "\n";
    const auto report = recover();
    ::close(control);
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(report.result.reason(), "a live process still serves " + (run_dir() / "control").string()));
    EXPECT_TRUE(fs::exists(run_dir() / "innd.pid"));
}

TEST_F(InndRecovery, TruncatedHistoryIsRebuiltKeepingRememberedEntriesAndTheDamagedText)
{
    write_history(40);  // entries 7, 14, ... are remembered; the spool is empty
    fs::resize_file(history(), fs::file_size(history()) - 10);
    const auto damaged_size = fs::file_size(history());

    const auto report = recover();
    ASSERT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_EQ(report.repair, history_repair::history_rebuilt);
    EXPECT_TRUE(contains(report.history_finding, "ends in the middle of a line"));
    ASSERT_FALSE(report.damaged_history.empty());
    EXPECT_EQ(fs::file_size(report.damaged_history), damaged_size);
    EXPECT_EQ(report.damaged_history.parent_path(), db());
    // 5 remembered entries survive (the 40th line was cut); the spool has none.
    EXPECT_EQ(report.history_entries, 5u);
    std::ifstream text(history());
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(text, line)) {
        lines.push_back(line);
    }
    EXPECT_EQ(lines, (std::vector<std::string>{history_line(7, true), history_line(14, true), history_line(21, true),
                                               history_line(28, true), history_line(35, true)}));
    struct stat st {};
    ASSERT_EQ(::stat(history().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, news_->pw_uid) << "the rebuilt history must belong to runasuser";
    EXPECT_EQ(msg::check_history_database(history(), deadline::after(10s)).finding, "");
    EXPECT_TRUE(contains(report.summary, "history rebuilt from the spool with makehistory and makedbz"));
    EXPECT_TRUE(contains(report.summary, "damaged text kept as " + report.damaged_history.string()));
}

TEST_F(InndRecovery, SecondRebuildKeepsTheFirstDamagedText)
{
    write_history(10);
    fs::resize_file(history(), 5);
    const auto first = recover();
    ASSERT_EQ(first.result.code(), ocf_code::success) << first.result.reason();
    append(history(), "garbage\n");
    const auto second = recover();
    ASSERT_EQ(second.result.code(), ocf_code::success) << second.result.reason();
    EXPECT_NE(first.damaged_history, second.damaged_history);
    EXPECT_TRUE(fs::exists(first.damaged_history));
    EXPECT_TRUE(fs::exists(second.damaged_history));
}

TEST_F(InndRecovery, StaleIndexIsRebuiltWithMakedbz)
{
    write_history(30);
    append(history(), history_line(31) + "\n" + history_line(32) + "\n");
    const auto report = recover();
    ASSERT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_EQ(report.repair, history_repair::index_rebuilt);
    EXPECT_EQ(report.history_entries, 32u);
    EXPECT_TRUE(report.damaged_history.empty());
    EXPECT_TRUE(contains(report.summary, "history index rebuilt with makedbz (the newest entry of"));
}

TEST_F(InndRecovery, RunningInndIsLeftAloneAndItsThrottleReported)
{
    write_history(0);
    const pid_t innd = start_innd();
    ASSERT_GT(innd, 0);
    inn_tool("ctlinnd", {"-t", "5", "throttle", "disk maintenance"});
    // Something recovery would otherwise remove, to show it is not touched.
    fs::resize_file(history(), 0);

    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_TRUE(report.innd_running);
    EXPECT_EQ(report.innd_pid, innd);
    EXPECT_EQ(report.server_mode, "Server throttled disk maintenance");
    EXPECT_EQ(report.summary, "innd is running as pid " + std::to_string(innd) +
                                  " (Server throttled disk maintenance): nothing recovered");
    EXPECT_TRUE(fs::exists(run_dir() / "innd.pid"));
    EXPECT_TRUE(fs::exists(run_dir() / "control"));
    // ctlinnd ran as news: no root-owned leftovers in pathrun.
    for (const auto& entry : fs::directory_iterator(run_dir())) {
        struct stat st {};
        ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, news_->pw_uid) << entry.path();
    }
}

TEST_F(InndRecovery, MissingPathrunIsCreatedForRunasuser)
{
    write_history(0);
    fs::remove_all(run_dir());
    const auto report = recover();
    ASSERT_EQ(report.result.code(), ocf_code::success) << report.result.reason();
    EXPECT_TRUE(report.pathrun_created);
    struct stat st {};
    ASSERT_EQ(::stat(run_dir().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, news_->pw_uid);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(InndRecovery, NotQuorateRefusesBeforeTouchingAnything)
{
    std::ofstream(run_dir() / "innd.pid") << dead_pid() << "\n";
    const auto report = recover(fixed_quorum(quorum_state::not_quorate, "partition without quorum"));
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(report.result.reason(), "not quorate"));
    EXPECT_TRUE(fs::exists(run_dir() / "innd.pid"));
}

TEST_F(InndRecovery, MissingInnConfIsNotInstalled)
{
    options_.inn_conf = base_ / "etc" / "absent.conf";
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_EQ(report.result.reason(), "inn.conf " + options_.inn_conf.string() + " does not exist");
}

TEST_F(InndRecovery, BrokenInnConfIsMisconfiguredWithInnsMessage)
{
    write_inn_conf("this line is no parameter\n");
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_configured);
    EXPECT_TRUE(contains(report.result.reason(), "innconfval: " + inn_conf().string() + ":"));
    EXPECT_TRUE(contains(report.result.reason(), "parse error")) << report.result.reason();
}

TEST_F(InndRecovery, UnmountedStoreIsNotInstalled)
{
    fs::remove_all(base_ / "spool" / "articles");
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_EQ(report.result.reason(), "patharticles " + (base_ / "spool" / "articles").string() + " does not exist");
}

TEST_F(InndRecovery, NoActiveFileFails)
{
    write_history(0);
    fs::remove(db() / "active");
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(report.result.reason(), "no active file in " + db().string()));
}

// -- the msg-recover binary

TEST_F(InndRecovery, CliPrintsTheSummaryAndExitsZero)
{
    write_history(2);
    const auto run = msg_test::run_helper(MSG_RECOVER_PATH, {"innd", "--inn-conf", inn_conf().string(),
                                                             "--deadline-ms", "20000"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_TRUE(contains(run.out, "recovered innd: removed 0 stale files; history intact (2 entries)"));
    EXPECT_EQ(msg_test::lines_of(run.out).size(), 1u);
}

TEST_F(InndRecovery, CliWithoutInnConfIsBadUsage)
{
    const auto run = msg_test::run_helper(MSG_RECOVER_PATH, {"innd"});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_EQ(msg_test::lines_of(run.err).size(), 1u);
    EXPECT_TRUE(contains(run.err, "--inn-conf"));
}

} // namespace
