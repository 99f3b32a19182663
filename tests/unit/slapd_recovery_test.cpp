// msg::recover_slapd on a real slapd's cn=config and MDB database in a temp
// dir: stale pid files, a live stranger that must never be signalled,
// a live slapd left alone, slaptest's verdict, stale MDB reader slots and a
// database that fails to open.
#include "msg/child_process.hpp"
#include "msg/process_identity.hpp"
#include "msg/slapd_recovery.hpp"

#include "recovery_checks.hpp"
#include "test_certificates.hpp"
#include "test_slapd.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using msg::deadline;
using msg::ocf_code;
using msg::quorum_state;
using msg::quorum_status;
using msg_test::contains;
using msg_test::test_slapd;

using msg_test::fixed_quorum;

const auto standalone = msg_test::standalone_quorum();

void write_file(const fs::path& file, const std::string& content)
{
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
}

using msg_test::dead_pid;

uid_t openldap_uid()
{
    const passwd* user = ::getpwnam("openldap");
    return user != nullptr ? user->pw_uid : 0;
}

uid_t owner_of(const fs::path& file)
{
    struct stat status {};
    return ::stat(file.c_str(), &status) == 0 ? status.st_uid : static_cast<uid_t>(-1);
}

class SlapdRecovery : public ::testing::Test {
protected:
    msg::slapd_recovery_report recover(const msg::quorum_check& quorum = standalone)
    {
        msg::slapd_recovery_options options;
        options.config = slapd_.config_dir();
        return msg::recover_slapd(options, quorum, deadline::after(30s));
    }

    test_slapd slapd_;
};

TEST_F(SlapdRecovery, ReadsPidFileAndDatabasesFromCnConfig)
{
    const auto layout = msg::read_slapd_layout(slapd_.config_dir());
    EXPECT_EQ(layout.pid_file, slapd_.pid_file());
    EXPECT_EQ(layout.args_file, slapd_.args_file());
    EXPECT_EQ(layout.db_dirs, std::vector<fs::path>{slapd_.db_dir()});
}

TEST_F(SlapdRecovery, StalePidAndArgsFilesOfADeadSlapdAreRemoved)
{
    write_file(slapd_.pid_file(), std::to_string(dead_pid()) + "\n");
    write_file(slapd_.args_file(), "/usr/sbin/slapd -h ldap:///\n");
    const auto report = recover();
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_FALSE(fs::exists(slapd_.pid_file()));
    EXPECT_FALSE(fs::exists(slapd_.args_file()));
    EXPECT_EQ(report.summary, "recovered slapd: removed 2 stale files; cleared 0 stale MDB readers; "
                              "1 MDB database opened cleanly; config check clean; standalone (no corosync)");
    // mdb_stat ran as root: the database stays slapd's.
    EXPECT_EQ(owner_of(slapd_.db_dir() / "lock.mdb"), openldap_uid());
    EXPECT_EQ(owner_of(slapd_.db_dir() / "data.mdb"), openldap_uid());
    // And slapd starts on what recovery left.
    slapd_.start();
}

TEST_F(SlapdRecovery, LiveStrangerAStalePidFileNamesIsNeverSignalled)
{
    const pid_t stranger = ::fork();
    if (stranger == 0) {
        ::execl("/bin/sleep", "sleep", "60", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // The file predates the stranger, as after a crash and pid reuse.
    write_file(slapd_.pid_file(), std::to_string(stranger) + "\n");
    const auto report = recover();
    const bool alive = msg::process_alive(stranger);
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);

    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(alive);
    EXPECT_EQ(report.foreign_pids, std::vector<pid_t>{stranger});
    EXPECT_TRUE(contains(report.summary, "(pid " + std::to_string(stranger) + " it named is not slapd: left alone)"));
    EXPECT_FALSE(report.slapd_running);
}

TEST_F(SlapdRecovery, RunningSlapdIsLeftAlone)
{
    slapd_.start();
    const auto report = recover();
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.slapd_running);
    EXPECT_EQ(report.slapd_pid, slapd_.pid());
    EXPECT_EQ(report.summary, "slapd is running as pid " + std::to_string(slapd_.pid()) + ": nothing recovered");
    EXPECT_TRUE(fs::exists(slapd_.pid_file()));
    EXPECT_TRUE(report.removed.empty());
}

TEST_F(SlapdRecovery, RunningSlapdWithoutPidFileIsFoundByItsDatabaseLock)
{
    slapd_.start();
    fs::remove(slapd_.pid_file());
    const auto report = recover();
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_TRUE(report.slapd_running);
    EXPECT_EQ(report.slapd_pid, slapd_.pid());
    EXPECT_TRUE(contains(report.summary, "lock.mdb): nothing recovered"));
}

TEST_F(SlapdRecovery, ConfigurationSlaptestRejectsIsMisconfiguredWithItsMessage)
{
    const fs::path database = slapd_.config_dir() / "cn=config" / "olcDatabase={1}mdb.ldif";
    std::ofstream(database, std::ios::app) << "olcDbIndex: noSuchAttribute eq\n";
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_configured) << report.result.reason();
    EXPECT_TRUE(contains(report.result.reason(), "noSuchAttribute")) << report.result.reason();
    EXPECT_FALSE(contains(report.result.reason(), "checksum"));
}

// A reader slot left by a process that died inside a read transaction while
// another process kept the environment open (so LMDB did not reset the table).
TEST_F(SlapdRecovery, StaleReaderSlotsAreCleared)
{
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_open(env, slapd_.db_dir().c_str(), MDB_RDONLY, 0600), 0);
    const pid_t reader = ::fork();
    if (reader == 0) {
        MDB_env* child_env = nullptr;
        MDB_txn* txn = nullptr;
        if (mdb_env_create(&child_env) != 0 || mdb_env_open(child_env, slapd_.db_dir().c_str(), MDB_RDONLY, 0600) != 0
            || mdb_txn_begin(child_env, nullptr, MDB_RDONLY, &txn) != 0)
            ::_exit(1);
        ::_exit(0);  // dies holding its slot
    }
    int status = 0;
    ::waitpid(reader, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    const auto report = recover();
    mdb_env_close(env);
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_EQ(report.stale_readers, 1u);
    EXPECT_TRUE(contains(report.summary, "cleared 1 stale MDB reader;"));
}

TEST_F(SlapdRecovery, DatabaseThatFailsToOpenIsRefused)
{
    std::mt19937 random(42);
    std::string garbage(256 * 1024, '\0');
    for (auto& byte : garbage)
        byte = static_cast<char>(random());
    write_file(slapd_.db_dir() / "data.mdb", garbage);
    fs::remove(slapd_.db_dir() / "lock.mdb");
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_EQ(report.result.reason(), "MDB database " + slapd_.db_dir().string()
                                          + " fails to open (mdb_env_open failed, error -30793 MDB_INVALID: File is "
                                            "not an LMDB file): refusing to start slapd on it");
    // mdb_stat's root-owned lock file is not left for slapd to trip over.
    EXPECT_FALSE(fs::exists(slapd_.db_dir() / "lock.mdb"));
}

TEST_F(SlapdRecovery, TruncatedDatabaseIsRefused)
{
    fs::resize_file(slapd_.db_dir() / "data.mdb", 5000);
    const auto report = recover();
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(report.result.reason(), "fails to open")) << report.result.reason();
    EXPECT_TRUE(contains(report.result.reason(), "refusing to start slapd on it"));
}

TEST_F(SlapdRecovery, NewDatabaseWithoutDataFileIsFine)
{
    fs::remove(slapd_.db_dir() / "data.mdb");
    fs::remove(slapd_.db_dir() / "lock.mdb");
    const auto report = recover();
    ASSERT_TRUE(report.result.healthy()) << report.result.reason();
    EXPECT_EQ(report.databases_new, std::vector<fs::path>{slapd_.db_dir()});
    EXPECT_TRUE(contains(report.summary, "0 MDB databases opened cleanly (1 not created yet)"));
}

TEST_F(SlapdRecovery, MissingDatabaseDirectoryIsNotInstalled)
{
    msg::slapd_recovery_options options;
    options.config = slapd_.config_dir();
    options.db_dirs = {slapd_.dir() / "unmounted"};
    const auto report = msg::recover_slapd(options, standalone, deadline::after(30s));
    EXPECT_EQ(report.result.code(), ocf_code::err_installed);
    EXPECT_EQ(report.result.reason(),
              "MDB database directory " + (slapd_.dir() / "unmounted").string() + " does not exist");
}

TEST_F(SlapdRecovery, InquorateNodeTouchesNothing)
{
    write_file(slapd_.pid_file(), std::to_string(dead_pid()) + "\n");
    const auto report = recover(fixed_quorum(quorum_state::not_quorate, "partition without quorum"));
    EXPECT_EQ(report.result.code(), ocf_code::err_generic);
    EXPECT_EQ(report.result.reason(), "node is not quorate: refusing to recover slapd store");
    EXPECT_TRUE(fs::exists(slapd_.pid_file()));
}

TEST(SlapdLayout, SlapdConfFile)
{
    const msg_test::temp_dir dir;
    const auto file = dir.write("slapd.conf", "# global\n"
                                              "include /etc/ldap/schema/core.schema\n"
                                              "pidfile \"/run/slapd/slapd.pid\"\n"
                                              "argsfile /run/slapd/slapd.args\n"
                                              "moduleload back_mdb\n"
                                              "database config\n"
                                              "database mdb\n"
                                              "suffix \"dc=example,dc=com\"\n"
                                              "directory\n"
                                              "  /var/lib/ldap/example\n"
                                              "database ldap\n"
                                              "directory /not/mdb\n"
                                              "database mdb\n"
                                              "DIRECTORY \"/var/lib/ldap/with space\"\n");
    const auto layout = msg::read_slapd_layout(file);
    EXPECT_EQ(layout.pid_file, "/run/slapd/slapd.pid");
    EXPECT_EQ(layout.args_file, "/run/slapd/slapd.args");
    EXPECT_EQ(layout.db_dirs, (std::vector<fs::path>{"/var/lib/ldap/example", "/var/lib/ldap/with space"}));
}

TEST(SlapdLayout, MissingConfigurationIsNotInstalled)
{
    try {
        msg::read_slapd_layout("/nonexistent/slapd.d");
        ADD_FAILURE() << "no exception";
    } catch (const msg::check_failure& failure) {
        EXPECT_EQ(failure.result().code(), ocf_code::err_installed);
        EXPECT_EQ(failure.result().reason(), "slapd configuration /nonexistent/slapd.d does not exist");
    }
}

TEST(SlapdToolOutput, SlaptestReasonLine)
{
    EXPECT_EQ(msg::slapd_error_line(
                  "ldif_read_file: checksum error on \"slapd.d/cn=config/olcDatabase={1}mdb.ldif\"\n"
                  "olcDbDirectory: value #0: invalid path: No such file or directory\n"
                  "config error processing olcDatabase={1}mdb,cn=config: olcDbDirectory: value #0: invalid path: "
                  "No such file or directory\n"
                  "slaptest: bad configuration directory!\n"),
              "config error processing olcDatabase={1}mdb,cn=config: olcDbDirectory: value #0: invalid path: No "
              "such file or directory");
    EXPECT_EQ(msg::slapd_error_line("Unrecognized database type (mdb)\n"
                                    "slapd.conf: line 2: <database> failed init (mdb)\n"
                                    "slaptest: bad configuration file!\n"),
              "slapd.conf: line 2: <database> failed init (mdb)");
    EXPECT_EQ(msg::slapd_error_line("6565f0a1 something odd happened\nslaptest: bad configuration file!\n"),
              "something odd happened");
    EXPECT_EQ(msg::slapd_error_line("slaptest: bad configuration file!\n"), "slaptest: bad configuration file!");
}

TEST(SlapdToolOutput, ClearedReaderCount)
{
    EXPECT_EQ(msg::cleared_reader_count("Reader Table Status\n    pid     thread     txnid\n"
                                        "  4242 7f00 12\n  3 stale readers cleared.\n(no active readers)\n"),
              3u);
    EXPECT_EQ(msg::cleared_reader_count("Status of Main DB\n"), std::nullopt);
    // Found by tool_output_fuzz: more than size_t holds threw out of recovery.
    EXPECT_EQ(msg::cleared_reader_count("  99999999999999999999999 stale readers cleared.\n"), std::nullopt);
}

// The binary in a fresh network namespace, where no corosync can be
// reached: the standalone path, whatever cluster tests run on this host.
TEST_F(SlapdRecovery, CommandLineRecoversStandaloneWithOneSummaryLine)
{
    write_file(slapd_.pid_file(), std::to_string(dead_pid()) + "\n");
    msg::child_command command;
    command.program = "/usr/bin/unshare";
    command.args = {"--net", MSG_RECOVER_PATH, "slapd", "--config", slapd_.config_dir().string(), "--deadline-ms",
                    "30000"};
    const auto run = msg::run_child(command, deadline::after(60s));
    ASSERT_TRUE(run.exit_code.has_value()) << run.describe_end();
    EXPECT_EQ(*run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, "recovered slapd: removed 1 stale file; cleared 0 stale MDB readers; 1 MDB database opened "
                       "cleanly; config check clean; standalone (no corosync)\n");
    EXPECT_EQ(run.err, "");

    std::ofstream(slapd_.config_dir() / "cn=config" / "olcDatabase={1}mdb.ldif", std::ios::app)
        << "olcDbIndex: noSuchAttribute eq\n";
    command.args.insert(command.args.end(), {"--db-dir", slapd_.db_dir().string()});
    const auto broken = msg::run_child(command, deadline::after(60s));
    ASSERT_TRUE(broken.exit_code.has_value()) << broken.describe_end();
    EXPECT_EQ(*broken.exit_code, 6);
    EXPECT_TRUE(broken.out.empty());
    EXPECT_TRUE(contains(broken.err, "noSuchAttribute"));
    EXPECT_EQ(std::count(broken.err.begin(), broken.err.end(), '\n'), 1) << broken.err;
}

} // namespace
