#include "msg/child_process.hpp"
#include "msg/dovecot_recovery.hpp"
#include "msg/process_identity.hpp"

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
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using msg::deadline;
using msg::mailbox_ref;
using msg::ocf_code;
using msg::quorum_state;
using msg::quorum_status;

namespace {

using msg_test::fixed_quorum;

const auto standalone = msg_test::standalone_quorum();

std::string hostname()
{
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
}

using msg_test::dead_pid;

std::string read_file(const fs::path& file)
{
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const fs::path& file, const std::string& text)
{
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::trunc) << text;
}

void age(const fs::path& file, std::chrono::seconds by)
{
    fs::last_write_time(file, fs::file_time_type::clock::now() - by);
}

// A Dovecot instance under a mkdtemp dir (stock-agents-measured.md section
// 1.3, with a passwd-file userdb so that users can be listed): no listener
// is needed, recovery works on the files and through its own maintenance
// instance. Mailboxes are made with doveadm through that same path.
class DovecotRecovery : public ::testing::Test {
protected:
    void SetUp() override
    {
        ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        const passwd* vmail = ::getpwnam("vmail");
        ASSERT_NE(vmail, nullptr) << "user vmail missing: run scripts/install-deps";
        char templ[] = "/tmp/msg-recover-dovecot-test.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        base_ = templ;
        fs::permissions(base_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
        mail_ = base_ / "mail";
        fs::create_directories(base_ / "run");
        fs::create_directories(mail_);
        ASSERT_EQ(::chown(mail_.c_str(), vmail->pw_uid, vmail->pw_gid), 0);
        write_file(base_ / "users", "alice@example.com:{PLAIN}alice::::::\n");
        write_config("passwd-file", "username_format=%u " + (base_ / "users").string());
    }

    void TearDown() override
    {
        for (pid_t pid : strangers_) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        fs::remove_all(base_);
    }

    void write_config(const std::string& userdb_driver, const std::string& userdb_args) const
    {
        std::ofstream conf(config(), std::ios::trunc);
        conf << "base_dir = " << (base_ / "run").string() << "\n"
             << "state_dir = " << (base_ / "state").string() << "\n"
             << "protocols = imap lmtp\nlisten = 127.0.0.1\nssl = no\n"
             << "log_path = " << (base_ / "dovecot.log").string() << "\n"
             << "mail_location = maildir:~/Maildir\nfirst_valid_uid = 5000\n"
             << "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u "
             << (base_ / "users").string() << "\n}\n"
             << "userdb {\n  driver = " << userdb_driver << "\n  args = " << userdb_args << "\n"
             << "  default_fields = uid=vmail gid=vmail home=" << mail_.string() << "/%d/%n\n}\n"
             << "service imap-login {\n  inet_listener imap {\n    port = 0\n  }\n"
             << "  inet_listener imaps {\n    port = 0\n  }\n}\n";
    }

    fs::path config() const { return base_ / "dovecot.conf"; }
    fs::path maildir() const { return mail_ / "example.com" / "alice" / "Maildir"; }

    msg::dovecot_recovery_options options() const
    {
        msg::dovecot_recovery_options opts;
        opts.config_file = config();
        opts.mail_root = mail_;
        return opts;
    }

    // Creates alice's INBOX (with `messages` messages) and a Probe folder as
    // Dovecot itself would, through doveadm against a listener-less master.
    // With `write_index`, also makes Dovecot write INBOX's dovecot.index,
    // which it does only once its transaction log has grown enough.
    void make_mailboxes(int messages = 1, bool write_index = false)
    {
        msg::child_command dovecot;
        dovecot.program = "/usr/sbin/dovecot";
        dovecot.args = {"-c", config().string(), "-F", "-o", "protocols=none"};
        msg::background_child master(dovecot);
        ASSERT_TRUE(master.started()) << master.launch_error();
        const fs::path socket = base_ / "run" / "auth-userdb";
        for (int i = 0; i < 250 && !fs::exists(socket); ++i) {
            std::this_thread::sleep_for(20ms);
        }
        doveadm({"mailbox", "create", "-u", "alice@example.com", "Probe"});
        for (int i = 0; i < messages; ++i) {
            write_file(maildir() / "new" / ("1700000000.M" + std::to_string(i) + "P1.test"),
                       "Subject: message " + std::to_string(i) + "\n\nbody\n");
        }
        const passwd* vmail = ::getpwnam("vmail");
        for (const auto& entry : fs::recursive_directory_iterator(mail_)) {
            ASSERT_EQ(::lchown(entry.path().c_str(), vmail->pw_uid, vmail->pw_gid), 0);
        }
        doveadm({"mailbox", "status", "-u", "alice@example.com", "messages", "INBOX"});
        std::string odd;
        for (int i = 1; i <= messages; i += 2) {
            odd += (odd.empty() ? "" : ",") + std::to_string(i);
        }
        for (int round = 0; write_index && round < 10 && !fs::exists(maildir() / "dovecot.index"); ++round) {
            doveadm({"flags", "add", "-u", "alice@example.com", "\\Flagged", "mailbox", "INBOX", odd});
            doveadm({"flags", "remove", "-u", "alice@example.com", "\\Flagged", "mailbox", "INBOX", odd});
        }
        master.stop(2s);
        ASSERT_TRUE(fs::is_directory(maildir() / "cur"));
        ASSERT_TRUE(fs::is_directory(maildir() / ".Probe" / "tmp"));
        ASSERT_TRUE(!write_index || fs::exists(maildir() / "dovecot.index"));
    }

    void doveadm(const std::vector<std::string>& args) const
    {
        msg::child_command command;
        command.program = "/usr/bin/doveadm";
        command.args = {"-c", config().string()};
        command.args.insert(command.args.end(), args.begin(), args.end());
        const auto run = msg::run_child(command, deadline::after(20s));
        ASSERT_TRUE(run.succeeded()) << run.describe_end() << ": " << run.err;
    }

    std::size_t message_files() const
    {
        std::size_t count = 0;
        for (const char* sub : {"new", "cur"}) {
            count += static_cast<std::size_t>(
                std::distance(fs::directory_iterator(maildir() / sub), fs::directory_iterator{}));
        }
        return count;
    }

    pid_t stranger()
    {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::execl("/bin/sleep", "sleep", "300", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        strangers_.push_back(pid);
        return pid;
    }

    fs::path base_;
    fs::path mail_;
    std::vector<pid_t> strangers_;
};

} // namespace

TEST(DovecotRecoveryText, MailboxErrorsAreFoundPerUserAndMailbox)
{
    const std::string err =
        "doveadm(alice@example.com): Error: Mailbox INBOX: Corrupted index file /m/dovecot.index: "
        "messages_count too large (65535 > 105)\n"
        "doveadm(alice@example.com): Warning: fscking index file /m/dovecot.index\n"
        "doveadm(alice@example.com): Error: Mailbox INBOX: Fixed index file /m/dovecot.index: x\n"
        "doveadm(bob@example.com)<1234><sess>: Error: Mailbox Sent Items: Index is read-only\n"
        "doveadm: Error: something without a user\n"
        "doveadm(carol@example.com): Error: auth-master: userdb lookup failed\n";
    const auto boxes = msg::mailboxes_with_errors(err);
    ASSERT_EQ(boxes.size(), 2u);
    EXPECT_EQ(boxes[0], (mailbox_ref{"alice@example.com", "INBOX"}));
    EXPECT_EQ(boxes[1], (mailbox_ref{"bob@example.com", "Sent Items"}));
    EXPECT_TRUE(msg::mailboxes_with_errors("").empty());
}

TEST(DovecotRecoveryText, DotlockOwnerIsPidColonHost)
{
    const auto owner = msg::parse_dotlock("12345:mail1.example.com");
    ASSERT_TRUE(owner);
    EXPECT_EQ(owner->pid, 12345);
    EXPECT_EQ(owner->host, "mail1.example.com");
    EXPECT_TRUE(msg::parse_dotlock("42:node2\n"));
    for (const char* bad : {"", "12345", ":host", "12x:host", "0:host", "-1:host", "12:", "12:two words"}) {
        EXPECT_FALSE(msg::parse_dotlock(bad)) << bad;
    }
}

TEST(DovecotRecoveryText, ErrorLinePrefersFatal)
{
    EXPECT_EQ(msg::dovecot_error_line("Warning: x\ndoveconf: Fatal: Error in configuration file /c line 2: "
                                      "Unknown setting: foo\n"),
              "doveconf: Fatal: Error in configuration file /c line 2: Unknown setting: foo");
    EXPECT_EQ(msg::dovecot_error_line("a\nlast words\n\n"), "last words");
}

TEST_F(DovecotRecovery, StaleFilesAndOldTmpLeftoversAreHandledAndMailKept)
{
    make_mailboxes();
    ASSERT_EQ(message_files(), 1u);
    // master.pid of a dead master whose pid now belongs to a stranger.
    const pid_t foreign = stranger();
    write_file(base_ / "run" / "master.pid", std::to_string(foreign) + "\n");
    age(base_ / "run" / "master.pid", 60s);
    // Dotlocks: an empty one, one of a dead pid here, one from another node.
    write_file(maildir() / "dovecot-uidlist.lock", "");
    write_file(maildir() / ".Probe" / "dovecot-uidlist.lock", std::to_string(dead_pid()) + ":" + hostname());
    write_file(maildir() / "dovecot-keywords.lock", "1:some-other-node");
    // tmp/: one partial delivery old enough to quarantine, one too fresh.
    write_file(maildir() / "tmp" / "1700000000.M1P1.node1", "partial message");
    age(maildir() / "tmp" / "1700000000.M1P1.node1", 2h);
    write_file(maildir() / ".Probe" / "tmp" / "fresh", "being written");

    auto opts = options();
    opts.check_indexes = false;
    const auto report = msg::recover_dovecot(opts, standalone, deadline::after(30s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();

    EXPECT_FALSE(fs::exists(base_ / "run" / "master.pid"));
    EXPECT_EQ(::kill(foreign, 0), 0) << "the stranger named by master.pid was signalled";
    EXPECT_FALSE(fs::exists(maildir() / "dovecot-uidlist.lock"));
    EXPECT_FALSE(fs::exists(maildir() / ".Probe" / "dovecot-uidlist.lock"));
    EXPECT_FALSE(fs::exists(maildir() / "dovecot-keywords.lock"));
    EXPECT_EQ(report.removed.size(), 4u);

    EXPECT_FALSE(fs::exists(maildir() / "tmp" / "1700000000.M1P1.node1"));
    ASSERT_EQ(report.quarantined.size(), 1u);
    EXPECT_EQ(read_file(report.quarantined[0]), "partial message");
    EXPECT_EQ(report.quarantined[0],
              report.quarantine_dir / "example.com" / "alice" / "Maildir" / "tmp" / "1700000000.M1P1.node1");
    EXPECT_EQ(report.quarantine_dir.parent_path(), mail_ / "msg-quarantine");
    EXPECT_EQ(fs::status(mail_ / "msg-quarantine").permissions() & fs::perms::all, fs::perms::owner_all);
    EXPECT_TRUE(fs::exists(maildir() / ".Probe" / "tmp" / "fresh"));
    EXPECT_EQ(report.maildirs, 2u);

    EXPECT_EQ(message_files(), 1u);
    EXPECT_NE(report.summary.find("removed 4 stale files; quarantined 1 tmp file into "), std::string::npos)
        << report.summary;
    EXPECT_NE(report.summary.find("walked 2 Maildirs; index check disabled; standalone (no corosync)"),
              std::string::npos)
        << report.summary;

    // A second run finds nothing more to do, and the quarantine is not walked.
    const auto again = msg::recover_dovecot(opts, standalone, deadline::after(30s));
    ASSERT_TRUE(again.result.healthy()) << again.result.reason();
    EXPECT_TRUE(again.removed.empty());
    EXPECT_TRUE(again.quarantined.empty());
    EXPECT_EQ(again.maildirs, 2u);
}

TEST_F(DovecotRecovery, CorruptedIndexIsRebuiltWithForceResync)
{
    make_mailboxes(200, true);
    // Its header now claims far more messages than the file holds
    // (messages_count, a 32-bit field at offset 32).
    {
        std::fstream index(maildir() / "dovecot.index", std::ios::in | std::ios::out | std::ios::binary);
        index.seekp(32);
        index.write("\xff\xff\x00\x00", 4);
    }
    const auto report = msg::recover_dovecot(options(), standalone, deadline::after(60s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.index_check_skipped.empty()) << report.index_check_skipped;
    ASSERT_EQ(report.rebuilt.size(), 1u) << report.summary;
    EXPECT_EQ(report.rebuilt[0], (mailbox_ref{"alice@example.com", "INBOX"}));
    EXPECT_TRUE(report.still_failing.empty());
    EXPECT_NE(report.summary.find("rebuilt 1 mailbox index"), std::string::npos) << report.summary;
    EXPECT_EQ(message_files(), 200u) << "a message was lost";
    // The maintenance instance is gone, with its base_dir. Only this run's
    // own directory is looked at: other tests run their recoveries beside it.
    ASSERT_FALSE(report.maintenance_base_dir.empty());
    EXPECT_EQ(report.maintenance_base_dir.filename().string().rfind("msg-recover-dovecot.", 0), 0u)
        << report.maintenance_base_dir;
    EXPECT_FALSE(fs::exists(report.maintenance_base_dir)) << report.maintenance_base_dir << " left behind";
}

TEST_F(DovecotRecovery, UserdbThatCannotListSkipsTheIndexCheckWithAReason)
{
    write_config("static", "uid=vmail gid=vmail");
    const auto report = msg::recover_dovecot(options(), standalone, deadline::after(30s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_NE(report.index_check_skipped.find("cannot list users"), std::string::npos) << report.index_check_skipped;
    EXPECT_NE(report.summary.find("index check skipped: the userdb cannot list users"), std::string::npos)
        << report.summary;
}

TEST_F(DovecotRecovery, LiveMasterMeansNothingIsTouched)
{
    make_mailboxes();
    msg::child_command dovecot;
    dovecot.program = "/usr/sbin/dovecot";
    dovecot.args = {"-c", config().string(), "-F"};
    msg::background_child master(dovecot);
    ASSERT_TRUE(master.started());
    const fs::path pid_file = base_ / "run" / "master.pid";
    for (int i = 0; i < 250 && msg::check_pid_file(pid_file, {"/usr/sbin/dovecot"}).state !=
                                   msg::pid_file_state::running;
         ++i) {
        std::this_thread::sleep_for(20ms);
    }
    write_file(maildir() / "dovecot-uidlist.lock", "");
    write_file(maildir() / "tmp" / "old", "x");
    age(maildir() / "tmp" / "old", 2h);

    const auto report = msg::recover_dovecot(options(), standalone, deadline::after(30s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.master_running);
    EXPECT_EQ(report.master_pid, master.pid());
    EXPECT_TRUE(fs::exists(pid_file));
    EXPECT_TRUE(fs::exists(maildir() / "dovecot-uidlist.lock"));
    EXPECT_TRUE(fs::exists(maildir() / "tmp" / "old"));
    EXPECT_NE(report.summary.find("nothing recovered"), std::string::npos) << report.summary;
    master.stop(5s);
}

TEST_F(DovecotRecovery, DotlockOfALiveDovecotProgramHereIsLeftAlone)
{
    make_mailboxes();
    // A live Dovecot program on this host (a dovecot in another base_dir
    // stands in for an administrator's doveadm) and a stranger.
    fs::create_directories(base_ / "other-run");
    msg::child_command dovecot;
    dovecot.program = "/usr/sbin/dovecot";
    dovecot.args = {"-c", config().string(), "-F", "-o", "protocols=none", "-o",
                    "base_dir=" + (base_ / "other-run").string()};
    msg::background_child holder(dovecot);
    ASSERT_TRUE(holder.started());
    const pid_t foreign = stranger();
    write_file(maildir() / "dovecot-uidlist.lock", std::to_string(holder.pid()) + ":" + hostname());
    write_file(maildir() / ".Probe" / "dovecot-uidlist.lock", std::to_string(foreign) + ":" + hostname());

    auto opts = options();
    opts.check_indexes = false;
    const auto report = msg::recover_dovecot(opts, standalone, deadline::after(30s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(fs::exists(maildir() / "dovecot-uidlist.lock"));
    ASSERT_EQ(report.live_locks.size(), 1u);
    EXPECT_EQ(report.live_locks[0], maildir() / "dovecot-uidlist.lock");
    // A recycled pid that is not a Dovecot program owns nothing.
    EXPECT_FALSE(fs::exists(maildir() / ".Probe" / "dovecot-uidlist.lock"));
    EXPECT_NE(report.summary.find("1 live dotlock left alone"), std::string::npos) << report.summary;
    holder.stop(5s);
}

TEST_F(DovecotRecovery, PidFileNamingAnotherInstancesMasterIsStale)
{
    // Another instance's master: the same binary, started before the pid
    // file was written, but working in another base_dir.
    fs::create_directories(base_ / "other-run");
    msg::child_command dovecot;
    dovecot.program = "/usr/sbin/dovecot";
    dovecot.args = {"-c", config().string(), "-F", "-o", "protocols=none", "-o",
                    "base_dir=" + (base_ / "other-run").string()};
    msg::background_child other(dovecot);
    ASSERT_TRUE(other.started());
    for (int i = 0; i < 250 && !fs::exists(base_ / "other-run" / "master.pid"); ++i) {
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(1100ms);
    write_file(base_ / "run" / "master.pid", std::to_string(other.pid()) + "\n");

    auto opts = options();
    opts.check_indexes = false;
    const auto report = msg::recover_dovecot(opts, standalone, deadline::after(30s));
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(report.master_running);
    EXPECT_FALSE(fs::exists(base_ / "run" / "master.pid"));
    EXPECT_TRUE(other.running()) << "the other instance's master was signalled";
    other.stop(5s);
}

TEST_F(DovecotRecovery, InquorateNodeRefusesAndTouchesNothing)
{
    write_file(base_ / "run" / "master.pid", std::to_string(dead_pid()) + "\n");
    const auto report =
        msg::recover_dovecot(options(), fixed_quorum(quorum_state::not_quorate, "partition lacks quorum"),
                             deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_NE(report.result.reason().find("not quorate"), std::string::npos) << report.result.reason();
    EXPECT_TRUE(fs::exists(base_ / "run" / "master.pid"));
}

TEST_F(DovecotRecovery, MissingConfigOrStoreIsNotInstalled)
{
    auto opts = options();
    opts.config_file = base_ / "nonexistent.conf";
    auto report = msg::recover_dovecot(opts, standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed) << report.result.reason();

    opts = options();
    opts.mail_root = base_ / "not-mounted";
    report = msg::recover_dovecot(opts, standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_NE(report.result.reason().find("not mounted"), std::string::npos) << report.result.reason();
}

TEST_F(DovecotRecovery, BrokenConfigIsMisconfiguredWithDovecotsMessage)
{
    std::ofstream(config(), std::ios::app) << "no_such_setting = 1\n";
    const auto report = msg::recover_dovecot(options(), standalone, deadline::after(10s));
    EXPECT_EQ(report.result.code(), ocf_code::err_configured);
    EXPECT_NE(report.result.reason().find("Unknown setting: no_such_setting"), std::string::npos)
        << report.result.reason();
}

TEST_F(DovecotRecovery, BinaryPrintsOneSummaryLine)
{
    msg::child_command recover;
    recover.program = MSG_RECOVER_PATH;
    recover.args = {"dovecot", "--config-file", config().string(), "--mail-root", mail_.string(),
                    "--deadline-ms", "30000", "--no-index-check"};
    const auto run = msg::run_child(recover, deadline::after(40s));
    ASSERT_TRUE(run.exit_code) << run.describe_end();
    // 0 standalone or quorate, whichever cluster state this machine is in.
    ASSERT_EQ(*run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out.rfind("recovered dovecot: removed 0 stale files; quarantined 0 tmp files; walked 0 Maildirs; "
                            "index check disabled; ",
                            0),
              0u)
        << run.out;
    EXPECT_EQ(run.out.find('\n'), run.out.size() - 1);
}
