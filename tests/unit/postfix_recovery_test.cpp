#include "msg/child_process.hpp"
#include "msg/postfix_recovery.hpp"
#include "msg/process_identity.hpp"

#include "probe_checks.hpp"
#include "recovery_checks.hpp"

#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using msg::deadline;
using msg::ocf_code;
using msg::quorum_state;
using msg::quorum_status;

namespace {

using msg_test::fixed_quorum;
using msg_test::free_port;

const auto standalone = msg_test::standalone_quorum();

using msg_test::dead_pid;

std::string padded_pid(pid_t pid)
{
    // As Postfix writes it: right-aligned in 32 columns.
    std::ostringstream text;
    text.width(32);
    text << pid;
    text << '\n';
    return text.str();
}

// A private Postfix instance under a mkdtemp dir, as in
// stock-agents-measured.md section 1.2: chroot off, maillog_file, data dir
// owned by postfix, smtpd on a free loopback port.
class PostfixRecovery : public ::testing::Test {
protected:
    void SetUp() override
    {
        // A started master daemonizes; as subreaper this test inherits and
        // reaps it, instead of this machine's late-reaping PID 1.
        ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        char templ[] = "/tmp/msg-recover-test.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        base_ = templ;
        // The master opens master.lock as mail_owner, which must reach it.
        fs::permissions(base_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
        config_dir_ = base_ / "etc";
        spool_ = base_ / "spool";
        data_ = base_ / "data";
        create_instance(base_);
    }

    void TearDown() override
    {
        stop_postfix();
        stop_master(other_master_);
        for (pid_t pid : strangers_) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        fs::remove_all(base_);
    }

    // An instance's config, queue and data directories under `root`: this
    // test's own under base_, another one (in the same binary) under a
    // subdirectory of it.
    void create_instance(const fs::path& root) const
    {
        fs::create_directories(root / "etc");
        fs::create_directories(root / "spool");
        fs::create_directories(root / "data");
        const passwd* postfix_user = ::getpwnam("postfix");
        ASSERT_NE(postfix_user, nullptr) << "the postfix package is not installed";
        ASSERT_EQ(::chown((root / "data").c_str(), postfix_user->pw_uid, postfix_user->pw_gid), 0);
        write_main_cf("", root);
        write_master_cf(root);
    }

    void write_main_cf(const std::string& extra) const { write_main_cf(extra, base_); }

    void write_main_cf(const std::string& extra, const fs::path& root) const
    {
        std::ofstream main_cf(root / "etc" / "main.cf", std::ios::trunc);
        main_cf << "compatibility_level = 3.6\n"
                << "queue_directory = " << (root / "spool").string() << "\n"
                << "data_directory = " << (root / "data").string() << "\n"
                << "syslog_name = postfix-msg-recover-test\n"
                << "maillog_file = " << (root / "maillog").string() << "\n"
                << "maillog_file_prefixes = " << base_.string() << "\n"
                << "myhostname = mx.example.com\nmydomain = example.com\nmyorigin = example.com\n"
                << "mydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
                << "mynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n"
                << "relayhost =\nsmtputf8_enable = no\nbiff = no\n"
                << extra;
    }

    void write_master_cf(const fs::path& root) const
    {
        std::ofstream master_cf(root / "etc" / "master.cf", std::ios::trunc);
        master_cf << "127.0.0.1:" << free_port() << " inet n - n - - smtpd\n"
                  << "pickup unix n - n 60 1 pickup\n"
                  << "cleanup unix n - n - 0 cleanup\n"
                  << "qmgr unix n - n 300 1 qmgr\n"
                  << "rewrite unix - - n - - trivial-rewrite\n"
                  << "bounce unix - - n - 0 bounce\n"
                  << "defer unix - - n - 0 bounce\n"
                  << "trace unix - - n - 0 bounce\n"
                  << "flush unix n - n 1000? 0 flush\n"
                  << "proxymap unix - - n - - proxymap\n"
                  << "showq unix n - n - - showq\n"
                  << "error unix - - n - - error\n"
                  << "retry unix - - n - - error\n"
                  << "anvil unix - - n - 1 anvil\n"
                  << "scache unix - - n - 1 scache\n"
                  << "postlog unix-dgram n - n - 1 postlogd\n";
    }

    fs::path pid_file() const { return spool_ / "pid" / "master.pid"; }
    fs::path lock_file() const { return data_ / "master.lock"; }

    void write_file(const fs::path& file, const std::string& text) const
    {
        fs::create_directories(file.parent_path());
        std::ofstream(file, std::ios::trunc) << text;
    }

    msg::postfix_recovery_options options() const
    {
        msg::postfix_recovery_options opts;
        opts.config_dir = config_dir_;
        return opts;
    }

    msg::child_result postfix_command(const std::string& action, const fs::path& root) const
    {
        msg::child_command command;
        command.program = "/usr/sbin/postfix";
        command.args = {"-c", (root / "etc").string(), action};
        command.stderr_is_tty = true;
        return msg::run_child(command, deadline::after(30s));
    }

    // Starts the instance; returns its master's pid (0 on failure).
    pid_t start_postfix() { return master_ = start_instance(base_); }

    // Starts the instance under `root`; returns its master's pid (0 on failure).
    pid_t start_instance(const fs::path& root) const
    {
        const auto started = postfix_command("start", root);
        EXPECT_TRUE(started.succeeded()) << started.describe_end() << ": " << started.err;
        for (int i = 0; i < 300; ++i) {
            const auto check =
                msg::check_pid_file(root / "spool" / "pid" / "master.pid", {"/usr/lib/postfix/sbin/master"});
            if (check.state == msg::pid_file_state::running) {
                return check.pid;
            }
            ::usleep(10000);
        }
        ADD_FAILURE() << "postfix master did not come up";
        return 0;
    }

    void stop_postfix() { stop_master(master_); }

    static void stop_master(pid_t& master)
    {
        if (master <= 0) {
            return;
        }
        // Kill by pid whatever is left of the instance, then reap what this
        // subreaper inherited.
        for (pid_t pid : msg::process_tree(master)) {
            ::kill(pid, SIGKILL);
        }
        for (int i = 0; i < 200 && msg::process_alive(master); ++i) {
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            ::usleep(10000);
        }
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        master = 0;
    }

    pid_t stranger()
    {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::execl("/usr/bin/sleep", "sleep", "60", nullptr);
            ::_exit(127);
        }
        strangers_.push_back(pid);
        for (int i = 0; i < 200; ++i) {
            const auto stat = msg::read_proc_stat(pid);
            if (stat && stat->comm == "sleep") {
                break;
            }
            ::usleep(10000);
        }
        return pid;
    }

    fs::path base_;
    fs::path config_dir_;
    fs::path spool_;
    fs::path data_;
    pid_t master_ = 0;
    pid_t other_master_ = 0;  // of another instance, under base_ / "other"
    std::vector<pid_t> strangers_;
};

} // namespace

TEST(PostfixErrorLine, PicksTheFatalLine)
{
    EXPECT_EQ(msg::postfix_error_line("postfix/postfix-script: warning: x\npostfix: fatal: broken thing\n"),
              "postfix: fatal: broken thing");
    EXPECT_EQ(msg::postfix_error_line("line one\n  last words  \n\n"), "last words");
    EXPECT_EQ(msg::postfix_error_line("a\npostsuper: panic: oops\nb: error: e\n"), "postsuper: panic: oops");
    EXPECT_EQ(msg::postfix_error_line(" \n\n"), "");
}

TEST_F(PostfixRecovery, StaleMasterPidAndLockAreRemoved)
{
    write_file(pid_file(), padded_pid(dead_pid()));
    write_file(lock_file(), padded_pid(dead_pid()));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(report.master_running);
    EXPECT_EQ(report.removed.size(), 2u);
    EXPECT_FALSE(fs::exists(pid_file()));
    EXPECT_FALSE(fs::exists(lock_file()));
    EXPECT_EQ(report.summary,
              "recovered postfix: removed 2 stale files; queue structure checked; config check clean; "
              "standalone (no corosync)");
    // postfix check created the queue structure postsuper -s then checked.
    EXPECT_TRUE(fs::is_directory(spool_ / "deferred"));
    EXPECT_TRUE(fs::is_directory(spool_ / "maildrop"));
}

TEST_F(PostfixRecovery, NothingStaleIsNothingRemoved)
{
    const auto report = msg::recover_postfix(options(), fixed_quorum(quorum_state::quorate, "node is quorate"),
                                             deadline::after(60s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.removed.empty());
    EXPECT_EQ(report.summary,
              "recovered postfix: removed 0 stale files; queue structure checked; config check clean; node quorate");
}

TEST_F(PostfixRecovery, StalePidNamingAStrangerIsRemovedAndTheStrangerLives)
{
    const pid_t other = stranger();
    write_file(pid_file(), padded_pid(other));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(report.master_running);
    EXPECT_EQ(report.removed, std::vector<fs::path>{pid_file()});
    EXPECT_TRUE(msg::process_alive(other));
}

TEST_F(PostfixRecovery, StalePidNamingAnotherInstancesMasterIsRemovedAndThatMasterLives)
{
    // Instance A runs; this test's instance B is down, and both its pid
    // files (left by a dead master whose pid A's master now has, or copied
    // from A) name A's live master: the same program, started before they
    // were written, but working in A's queue_directory, not B's.
    const fs::path other = base_ / "other";
    create_instance(other);
    other_master_ = start_instance(other);
    ASSERT_GT(other_master_, 0);
    write_file(pid_file(), padded_pid(other_master_));
    write_file(lock_file(), padded_pid(other_master_));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(report.master_running);
    EXPECT_EQ(report.master_pid, 0);
    EXPECT_EQ(report.removed, (std::vector<fs::path>{pid_file(), lock_file()}));
    EXPECT_FALSE(fs::exists(pid_file()));
    EXPECT_FALSE(fs::exists(lock_file()));
    EXPECT_EQ(report.summary,
              "recovered postfix: removed 2 stale files; queue structure checked; config check clean; "
              "standalone (no corosync)");
    // A is untouched: its master alive and still the one its own pid file names.
    EXPECT_TRUE(msg::process_alive(other_master_));
    const auto a = msg::check_pid_file(other / "spool" / "pid" / "master.pid", {"/usr/lib/postfix/sbin/master"});
    EXPECT_EQ(a.state, msg::pid_file_state::running);
    EXPECT_EQ(a.pid, other_master_);
}

TEST_F(PostfixRecovery, RunningInstanceIsLeftAlone)
{
    const pid_t master = start_postfix();
    ASSERT_GT(master, 0);
    ASSERT_TRUE(fs::exists(lock_file()));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.master_running);
    EXPECT_EQ(report.master_pid, master);
    EXPECT_TRUE(report.removed.empty());
    EXPECT_EQ(report.summary, "postfix master is running as pid " + std::to_string(master) + ": nothing recovered");
    EXPECT_TRUE(fs::exists(pid_file()));
    EXPECT_TRUE(fs::exists(lock_file()));
    EXPECT_TRUE(msg::process_alive(master));
}

TEST_F(PostfixRecovery, RunningInstanceWithRewrittenPidFileIsFoundByItsLocks)
{
    const pid_t master = start_postfix();
    ASSERT_GT(master, 0);
    // Both pid files now name a stranger, but the master still holds its
    // locks on them: the instance is alive and its files stay.
    const pid_t other = stranger();
    write_file(pid_file(), padded_pid(other));
    write_file(lock_file(), padded_pid(other));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.master_running);
    EXPECT_EQ(report.master_pid, master);
    EXPECT_TRUE(report.removed.empty());
    EXPECT_TRUE(fs::exists(pid_file()));
    EXPECT_TRUE(fs::exists(lock_file()));
    EXPECT_TRUE(msg::process_alive(master));
    EXPECT_TRUE(msg::process_alive(other));
}

TEST_F(PostfixRecovery, KilledInstanceIsRecovered)
{
    const pid_t master = start_postfix();
    ASSERT_GT(master, 0);
    stop_postfix();  // SIGKILL of the whole instance: master.pid and master.lock stay behind
    ASSERT_TRUE(fs::exists(pid_file()));
    ASSERT_TRUE(fs::exists(lock_file()));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(report.master_running);
    EXPECT_EQ(report.removed.size(), 2u);
    EXPECT_FALSE(fs::exists(pid_file()));
    EXPECT_FALSE(fs::exists(lock_file()));
}

TEST_F(PostfixRecovery, BrokenMainCfIsMisconfigured)
{
    write_main_cf("this line is broken\n");
    write_file(pid_file(), padded_pid(dead_pid()));

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    EXPECT_EQ(report.result.code(), ocf_code::err_configured);
    EXPECT_NE(report.result.reason().find("missing '=' after attribute name: \"this line is broken\""),
              std::string::npos)
        << report.result.reason();
    EXPECT_EQ(report.result.reason().find('\n'), std::string::npos);
}

TEST_F(PostfixRecovery, PostfixCheckFailureCarriesPostfixsMessage)
{
    // postconf accepts this; only postfix check rejects it, and only on a
    // terminal does it say why.
    write_main_cf("maillog_file_prefixes = /nonexistent\n");

    const auto report = msg::recover_postfix(options(), standalone, deadline::after(60s));

    EXPECT_EQ(report.result.code(), ocf_code::err_configured);
    EXPECT_NE(report.result.reason().find("does not match any prefix in maillog_file_prefixes"), std::string::npos)
        << report.result.reason();
}

TEST_F(PostfixRecovery, InquorateNodeRefusesAndTouchesNothing)
{
    write_file(pid_file(), padded_pid(dead_pid()));

    const auto report = msg::recover_postfix(
        options(), fixed_quorum(quorum_state::not_quorate, "node is not quorate"), deadline::after(60s));

    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_EQ(report.result.reason(), "node is not quorate: refusing to recover postfix store");
    EXPECT_TRUE(fs::exists(pid_file()));
    EXPECT_FALSE(fs::exists(spool_ / "deferred"));
}

TEST_F(PostfixRecovery, UnanswerableQuorumRefuses)
{
    const auto report = msg::recover_postfix(
        options(), fixed_quorum(quorum_state::error, "corosync did not answer the quorum query before the deadline"),
        deadline::after(60s));
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_EQ(report.result.reason(),
              "corosync did not answer the quorum query before the deadline: refusing to recover postfix store");
}

TEST_F(PostfixRecovery, MissingConfigDirIsNotInstalled)
{
    auto opts = options();
    opts.config_dir = base_ / "absent";
    const auto report = msg::recover_postfix(opts, standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_EQ(report.result.reason(), "postfix config dir " + opts.config_dir.string() + " has no main.cf");
}

TEST_F(PostfixRecovery, UnmountedQueueDirectoryIsNotInstalled)
{
    fs::remove_all(spool_);
    const auto report = msg::recover_postfix(options(), standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_EQ(report.result.reason(), "queue_directory " + spool_.string() + " does not exist");
}

TEST_F(PostfixRecovery, MissingPostfixToolsAreNotInstalled)
{
    auto opts = options();
    opts.postfix_bin_dir = base_ / "no-bin";
    const auto report = msg::recover_postfix(opts, standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_NE(report.result.reason().find("cannot run postconf"), std::string::npos) << report.result.reason();
}

TEST_F(PostfixRecovery, HungToolEndsAtTheDeadline)
{
    const fs::path bin = base_ / "bin";
    fs::create_directories(bin);
    write_file(bin / "postconf", "#!/bin/sh\nexec sleep 30\n");
    fs::permissions(bin / "postconf", fs::perms::owner_all);
    auto opts = options();
    opts.postfix_bin_dir = bin;

    const auto started = std::chrono::steady_clock::now();
    const auto report = msg::recover_postfix(opts, standalone, deadline::after(300ms));
    const auto elapsed = std::chrono::steady_clock::now() - started;

    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_EQ(report.result.reason(), "postconf did not finish before the deadline");
    EXPECT_LT(elapsed, 2s);  // the hung postconf would take 30 s
}

// msg-recover itself, as the agent runs it: exit code, stdout summary, and
// exactly one stderr line on failure.
class MsgRecoverBinary : public PostfixRecovery {
protected:
    msg::child_result recover(std::vector<std::string> args) const
    {
        msg::child_command command;
        command.program = MSG_RECOVER_PATH;
        command.args = std::move(args);
        return msg::run_child(command, deadline::after(60s));
    }

    // In a fresh network namespace no corosync is reachable (libqb's sockets
    // are abstract unix sockets) and none runs there: the real standalone
    // path, whatever cluster a test may be running on this host meanwhile.
    msg::child_result recover_standalone(std::vector<std::string> args) const
    {
        msg::child_command command;
        command.program = "/usr/bin/unshare";
        // postfix check wants an active interface for inet_interfaces = 127.0.0.1.
        command.args = {"--net", "/bin/sh", "-c", "ip link set lo up && exec \"$0\" \"$@\"", MSG_RECOVER_PATH};
        command.args.insert(command.args.end(), args.begin(), args.end());
        return msg::run_child(command, deadline::after(60s));
    }
};

TEST_F(MsgRecoverBinary, RecoversStandaloneWhenNoCorosyncIsReachable)
{
    write_file(pid_file(), padded_pid(dead_pid()));
    write_file(lock_file(), padded_pid(dead_pid()));

    const auto run = recover_standalone({"postfix", "--config-dir", config_dir_.string(), "--deadline-ms", "60000"});

    ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
    EXPECT_EQ(*run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, "recovered postfix: removed 2 stale files; queue structure checked; config check clean; "
                       "standalone (no corosync)\n");
    EXPECT_EQ(run.err, "");
    EXPECT_FALSE(fs::exists(pid_file()));
    EXPECT_FALSE(fs::exists(lock_file()));
}

TEST_F(MsgRecoverBinary, FollowsThisHostsQuorum)
{
    // In this host's own namespaces the binary asks whatever corosync runs
    // here (test clusters come and go): it recovers standalone or quorate,
    // or refuses with the reason and touches nothing; never anything else.
    write_file(pid_file(), padded_pid(dead_pid()));

    const auto run = recover({"postfix", "--config-dir", config_dir_.string()});

    ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
    if (*run.exit_code == 0) {
        const std::string prefix = "recovered postfix: removed 1 stale file; queue structure checked; config check clean; ";
        EXPECT_TRUE(run.out == prefix + "standalone (no corosync)\n" || run.out == prefix + "node quorate\n") << run.out;
        EXPECT_EQ(run.err, "");
        EXPECT_FALSE(fs::exists(pid_file()));
    } else {
        EXPECT_EQ(*run.exit_code, 1) << run.err;
        EXPECT_NE(run.err.find("refusing to recover postfix store"), std::string::npos) << run.err;
        EXPECT_EQ(run.out, "");
        EXPECT_TRUE(fs::exists(pid_file()));
    }
}

TEST_F(MsgRecoverBinary, BrokenConfigExitsSixWithOneReasonLine)
{
    write_main_cf("this line is broken\n");

    const auto run = recover_standalone({"postfix", "--config-dir", config_dir_.string()});

    ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
    EXPECT_EQ(*run.exit_code, 6) << run.err;
    EXPECT_EQ(run.out, "");
    EXPECT_NE(run.err.find("missing '=' after attribute name"), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << run.err;
}

TEST_F(MsgRecoverBinary, BadUsageExitsTwo)
{
    for (const auto& args : std::vector<std::vector<std::string>>{
             {}, {"postfix"}, {"dovecot"}, {"postfix", "--config-dir", "x", "--deadline-ms", "soon"}}) {
        const auto run = recover(args);
        ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
        EXPECT_EQ(*run.exit_code, 2) << run.err;
        EXPECT_EQ(run.out, "");
        ASSERT_FALSE(run.err.empty());
        EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << run.err;
    }
}

TEST_F(MsgRecoverBinary, HelpDocumentsExitCodes)
{
    const auto run = recover({"postfix", "--help"});
    ASSERT_TRUE(run.succeeded()) << run.describe_end();
    EXPECT_NE(run.out.find("--config-dir"), std::string::npos);
    EXPECT_NE(run.out.find("--deadline-ms"), std::string::npos);
    EXPECT_NE(run.out.find("--postfix-bin-dir"), std::string::npos);
    EXPECT_NE(run.out.find("6  Postfix rejects its configuration"), std::string::npos);
}
