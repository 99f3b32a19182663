#include "msg/child_process.hpp"
#include "msg/process_identity.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using msg::check_pid_file;
using msg::pid_file_state;

namespace {

const fs::path sleep_exe = "/usr/bin/sleep";
const fs::path postfix_master = "/usr/lib/postfix/sbin/master";

// Children started by a test: killed and reaped when the test ends, pass or fail.
class spawned {
public:
    explicit spawned(std::vector<std::string> argv)
    {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::setpgid(0, 0);
            std::vector<char*> args;
            for (auto& arg : argv) {
                args.push_back(arg.data());
            }
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }
    ~spawned() { stop(); }
    spawned(const spawned&) = delete;
    spawned& operator=(const spawned&) = delete;

    pid_t pid() const { return pid_; }
    void stop()
    {
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

private:
    pid_t pid_ = -1;
};

class ProcessIdentity : public ::testing::Test {
protected:
    void SetUp() override
    {
        char templ[] = "/tmp/msg-pid-test.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        dir_ = templ;
        pid_file_ = dir_ / "daemon.pid";
    }
    void TearDown() override { fs::remove_all(dir_); }

    void write_pid_file(const std::string& text) const
    {
        std::ofstream out(pid_file_, std::ios::trunc);
        out << text;
    }
    void write_pid(pid_t pid) const { write_pid_file(std::to_string(pid) + "\n"); }

    void set_mtime_ago(std::chrono::seconds age) const
    {
        const auto when = std::chrono::system_clock::now() - age;
        const auto since_epoch = std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch());
        struct timespec times[2];
        times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(since_epoch.count());
        times[0].tv_nsec = times[1].tv_nsec = 0;
        ASSERT_EQ(::utimensat(AT_FDCWD, pid_file_.c_str(), times, 0), 0);
    }

    // Waits until `pid` is in state `state` (at most 2 s); with `comm`, also
    // until it has exec'ed that program, so a check never sees the fork.
    static bool wait_for_state(pid_t pid, char state, const std::string& comm = {})
    {
        for (int i = 0; i < 200; ++i) {
            const auto stat = msg::read_proc_stat(pid);
            if (stat && stat->state == state && (comm.empty() || stat->comm == comm)) {
                return true;
            }
            ::usleep(10000);
        }
        return false;
    }

    fs::path dir_;
    fs::path pid_file_;
};

} // namespace

TEST(PidParse, AcceptsOnlyAPidWithBlanks)
{
    EXPECT_EQ(msg::parse_pid("123"), 123);
    EXPECT_EQ(msg::parse_pid("123\n"), 123);
    // Postfix pads master.pid with leading spaces.
    EXPECT_EQ(msg::parse_pid("                            4321\n"), 4321);
    EXPECT_EQ(msg::parse_pid("\t77 \r\n"), 77);
    EXPECT_FALSE(msg::parse_pid(""));
    EXPECT_FALSE(msg::parse_pid("\n"));
    EXPECT_FALSE(msg::parse_pid("abc"));
    EXPECT_FALSE(msg::parse_pid("12abc"));
    EXPECT_FALSE(msg::parse_pid("12 34"));
    EXPECT_FALSE(msg::parse_pid("-5"));
    EXPECT_FALSE(msg::parse_pid("+5"));
    EXPECT_FALSE(msg::parse_pid("0"));
    EXPECT_FALSE(msg::parse_pid("99999999999999999999"));
    EXPECT_FALSE(msg::parse_pid("123\nextra"));
}

TEST_F(ProcessIdentity, MissingPidFile)
{
    const auto check = check_pid_file(pid_file_, {sleep_exe});
    EXPECT_EQ(check.state, pid_file_state::no_pid_file);
    EXPECT_EQ(check.pid, 0);
    EXPECT_EQ(check.reason, "pid file " + pid_file_.string() + " does not exist");
}

TEST_F(ProcessIdentity, GarbagePidFileIsStale)
{
    for (const char* garbage : {"", "garbage\n", "12abc\n", "-1\n", "0\n"}) {
        write_pid_file(garbage);
        const auto check = check_pid_file(pid_file_, {sleep_exe});
        EXPECT_EQ(check.state, pid_file_state::stale_dead) << "content '" << garbage << "'";
        EXPECT_EQ(check.reason, "pid file " + pid_file_.string() + " does not hold a pid");
    }
}

TEST_F(ProcessIdentity, DirectoryInsteadOfPidFileIsStale)
{
    fs::create_directory(pid_file_);
    const auto check = check_pid_file(pid_file_, {sleep_exe});
    EXPECT_EQ(check.state, pid_file_state::stale_dead);
    EXPECT_NE(check.reason.find("cannot read pid file"), std::string::npos) << check.reason;
}

TEST_F(ProcessIdentity, LiveSelfWithRightExeIsRunning)
{
    write_pid(::getpid());
    const auto self_exe = fs::read_symlink("/proc/self/exe");
    const auto check = check_pid_file(pid_file_, {postfix_master, self_exe});
    EXPECT_EQ(check.state, pid_file_state::running) << check.reason;
    EXPECT_EQ(check.pid, ::getpid());
    EXPECT_TRUE(check.reason.empty());
}

TEST_F(ProcessIdentity, LiveChildWithRightExeIsRunning)
{
    spawned daemon({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(daemon.pid(), 'S', "sleep"));
    write_pid(daemon.pid());
    const auto check = check_pid_file(pid_file_, {sleep_exe});
    EXPECT_EQ(check.state, pid_file_state::running) << check.reason;
    EXPECT_EQ(check.pid, daemon.pid());
    EXPECT_EQ(check.comm, "sleep");
    EXPECT_EQ(check.exe, sleep_exe.string());
}

TEST_F(ProcessIdentity, ReapedChildIsStaleDead)
{
    pid_t gone = 0;
    {
        spawned child({"/bin/true"});
        gone = child.pid();
        ::waitpid(gone, nullptr, 0);
    }
    write_pid(gone);
    const auto check = check_pid_file(pid_file_, {"/usr/bin/true"});
    EXPECT_EQ(check.state, pid_file_state::stale_dead);
    EXPECT_EQ(check.reason, "pid file " + pid_file_.string() + " names PID " + std::to_string(gone) +
                                ", which is not running");
}

TEST_F(ProcessIdentity, ZombieChildIsStaleDead)
{
    spawned child({sleep_exe.string(), "0"});
    // Not reaped yet: it lingers as a zombie, as daemons do here until the
    // late-reaping PID 1 collects them; kill(pid, 0) would still succeed.
    ASSERT_TRUE(wait_for_state(child.pid(), 'Z', "sleep"));
    ASSERT_EQ(::kill(child.pid(), 0), 0);
    write_pid(child.pid());
    const auto check = check_pid_file(pid_file_, {sleep_exe});
    EXPECT_EQ(check.state, pid_file_state::stale_dead);
    EXPECT_NE(check.reason.find("zombie"), std::string::npos) << check.reason;
    EXPECT_FALSE(msg::process_alive(child.pid()));
}

TEST_F(ProcessIdentity, UnrelatedLiveProcessIsForeign)
{
    spawned stranger({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(stranger.pid(), 'S', "sleep"));
    write_pid(stranger.pid());
    const auto check = check_pid_file(pid_file_, {postfix_master});
    EXPECT_EQ(check.state, pid_file_state::stale_foreign);
    EXPECT_EQ(check.pid, stranger.pid());
    EXPECT_EQ(check.reason, "pid file " + pid_file_.string() + " names PID " + std::to_string(stranger.pid()) +
                                " (sleep), which is not /usr/lib/postfix/sbin/master: not signalling it");
    EXPECT_TRUE(msg::process_alive(stranger.pid()));
}

TEST_F(ProcessIdentity, ProcessStartedAfterPidFileWasWrittenIsForeign)
{
    spawned reused({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(reused.pid(), 'S', "sleep"));
    write_pid(reused.pid());
    // The file is older than the process: the pid it names was reused.
    set_mtime_ago(std::chrono::seconds(10));
    const auto check = check_pid_file(pid_file_, {sleep_exe});
    EXPECT_EQ(check.state, pid_file_state::stale_foreign);
    EXPECT_NE(check.reason.find("started after the pid file was written: not signalling it"), std::string::npos)
        << check.reason;
}

TEST_F(ProcessIdentity, PidFileWrittenInTheSameSecondCounts)
{
    spawned daemon({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(daemon.pid(), 'S', "sleep"));
    write_pid(daemon.pid());
    // mtime in whole seconds, possibly earlier than the start time computed
    // from btime: still within the slack.
    set_mtime_ago(std::chrono::seconds(0));
    EXPECT_EQ(check_pid_file(pid_file_, {sleep_exe}).state, pid_file_state::running);
}

TEST_F(ProcessIdentity, ExecutableReplacedByUpgradeStillCounts)
{
    const fs::path binary = dir_ / "daemon";
    fs::copy_file(sleep_exe, binary);
    spawned daemon({binary.string(), "30"});
    ASSERT_TRUE(wait_for_state(daemon.pid(), 'S', "daemon"));
    write_pid(daemon.pid());
    // A package upgrade unlinks the running binary and installs a new one.
    fs::remove(binary);
    fs::copy_file(sleep_exe, binary);
    ASSERT_EQ(msg::process_exe(daemon.pid()), binary.string());
    const auto check = check_pid_file(pid_file_, {binary});
    EXPECT_EQ(check.state, pid_file_state::running) << check.reason;
}

TEST_F(ProcessIdentity, ExpectedExecutableMayBeASymlink)
{
    const fs::path link = dir_ / "sleep-link";
    fs::create_symlink(sleep_exe, link);
    spawned daemon({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(daemon.pid(), 'S', "sleep"));
    write_pid(daemon.pid());
    EXPECT_EQ(check_pid_file(pid_file_, {link}).state, pid_file_state::running);
}

TEST_F(ProcessIdentity, TreeListsAllDescendants)
{
    spawned root({"/bin/sh", "-c", "/bin/sh -c 'sleep 30 & wait' & sleep 30 & wait"});
    std::vector<pid_t> tree;
    for (int i = 0; i < 200 && tree.size() < 4; ++i) {
        ::usleep(10000);
        tree = msg::process_tree(root.pid());
    }
    ASSERT_EQ(tree.size(), 4u);
    EXPECT_EQ(tree.front(), root.pid());
    int sleeps = 0;
    for (pid_t pid : tree) {
        const auto stat = msg::read_proc_stat(pid);
        ASSERT_TRUE(stat);
        sleeps += stat->comm == "sleep" ? 1 : 0;
        EXPECT_TRUE(pid == root.pid() || std::find(tree.begin(), tree.end(), stat->ppid) != tree.end());
    }
    EXPECT_EQ(sleeps, 2);
    // This test process is not part of its child's tree.
    EXPECT_EQ(std::count(tree.begin(), tree.end(), ::getpid()), 0);
}

TEST_F(ProcessIdentity, TreeOfMissingProcessIsEmpty)
{
    pid_t gone = 0;
    {
        spawned child({"/bin/true"});
        gone = child.pid();
    }
    EXPECT_TRUE(msg::process_tree(gone).empty());
}

TEST(ProcessStartTime, IsCloseToNowForANewProcess)
{
    spawned child({sleep_exe.string(), "30"});
    const auto started = msg::process_start_time(child.pid());
    ASSERT_TRUE(started);
    const auto skew = std::chrono::system_clock::now() - *started;
    EXPECT_LT(std::chrono::abs(skew), std::chrono::seconds(2));
}

// `msg-probe process`, as the agents run it.
class MsgProbeProcess : public ProcessIdentity {
protected:
    msg::child_result probe(std::vector<std::string> args) const
    {
        msg::child_command command;
        command.program = MSG_PROBE_PATH;
        command.args = {"process", "--pid-file", pid_file_.string()};
        command.args.insert(command.args.end(), args.begin(), args.end());
        return msg::run_child(command, msg::deadline::after(std::chrono::seconds(10)));
    }
};

TEST_F(MsgProbeProcess, PrintsThePidOfARunningDaemon)
{
    spawned daemon({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(daemon.pid(), 'S', "sleep"));
    write_pid(daemon.pid());
    const auto run = probe({"--exe", postfix_master.string(), "--exe", sleep_exe.string()});
    EXPECT_TRUE(run.succeeded()) << run.describe_end() << ": " << run.err;
    EXPECT_EQ(run.out, std::to_string(daemon.pid()) + "\n");
    EXPECT_EQ(run.err, "");
}

TEST_F(MsgProbeProcess, ForeignPidIsNotRunningAndNamed)
{
    spawned stranger({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(stranger.pid(), 'S', "sleep"));
    write_pid(stranger.pid());
    const auto run = probe({"--exe", postfix_master.string()});
    ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
    EXPECT_EQ(*run.exit_code, 7);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, "pid file " + pid_file_.string() + " names PID " + std::to_string(stranger.pid()) +
                           " (sleep), which is not /usr/lib/postfix/sbin/master: not signalling it\n");
    EXPECT_TRUE(msg::process_alive(stranger.pid()));
}

TEST_F(MsgProbeProcess, MissingPidFileIsNotRunning)
{
    const auto run = probe({"--exe", sleep_exe.string()});
    ASSERT_TRUE(run.exit_code.has_value());
    EXPECT_EQ(*run.exit_code, 7);
    EXPECT_EQ(run.err, "pid file " + pid_file_.string() + " does not exist\n");
}

TEST_F(MsgProbeProcess, ZombieIsNotRunning)
{
    spawned child({sleep_exe.string(), "0"});
    ASSERT_TRUE(wait_for_state(child.pid(), 'Z', "sleep"));
    write_pid(child.pid());
    const auto run = probe({"--exe", sleep_exe.string()});
    ASSERT_TRUE(run.exit_code.has_value());
    EXPECT_EQ(*run.exit_code, 7);
    EXPECT_NE(run.err.find("zombie"), std::string::npos) << run.err;
}

TEST_F(MsgProbeProcess, TreeListsTheDaemonAndItsDescendants)
{
    spawned root({"/bin/sh", "-c", "/bin/sh -c 'sleep 30 & wait' & sleep 30 & wait"});
    for (int i = 0; i < 200 && msg::process_tree(root.pid()).size() < 4; ++i) {
        ::usleep(10000);
    }
    write_pid(root.pid());
    const auto run = probe({"--exe", "/bin/sh", "--tree"});  // a symlink to dash
    ASSERT_TRUE(run.succeeded()) << run.describe_end() << ": " << run.err;
    std::vector<pid_t> listed;
    std::istringstream lines(run.out);
    long pid = 0;
    while (lines >> pid) {
        listed.push_back(static_cast<pid_t>(pid));
    }
    ASSERT_EQ(listed.size(), 4u) << run.out;
    EXPECT_EQ(listed.front(), root.pid());
    EXPECT_EQ(listed, msg::process_tree(root.pid()));
}

TEST_F(MsgProbeProcess, TreeOfAForeignPidIsRefused)
{
    spawned stranger({sleep_exe.string(), "30"});
    ASSERT_TRUE(wait_for_state(stranger.pid(), 'S', "sleep"));
    write_pid(stranger.pid());
    const auto run = probe({"--exe", postfix_master.string(), "--tree"});
    ASSERT_TRUE(run.exit_code.has_value());
    EXPECT_EQ(*run.exit_code, 7);
    EXPECT_EQ(run.out, "");
    EXPECT_NE(run.err.find("not signalling it"), std::string::npos) << run.err;
}

TEST_F(MsgProbeProcess, BadUsageExitsTwo)
{
    for (const auto& args : std::vector<std::vector<std::string>>{{}, {"--exe", "sleep"}}) {
        const auto run = probe(args);
        ASSERT_TRUE(run.exit_code.has_value());
        EXPECT_EQ(*run.exit_code, 2) << run.err;
        EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << run.err;
    }
}
