// msg::check_ldap against fake listeners that misbehave (every case must end
// by the deadline) and against a real slapd from a temp cn=config: binds,
// probe entry, write probe, a full MDB map, SIGSTOP, TLS, replication lag.
#include "msg/deadline.hpp"
#include "msg/ldap.hpp"
#include "msg/mdb_usage.hpp"
#include "msg/outcome.hpp"

#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "test_slapd.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::fake_server;
using msg_test::free_port;
using msg_test::server_script;
using msg_test::test_password;
using msg_test::test_slapd;
using msg_test::timed;
using msg_test::timed_outcome;

// Scheduling noise on a shared 2-core machine, never a real overrun.
constexpr auto slack = 300ms;

timed_outcome run(const msg::ldap_options& options)
{
    return timed([&options] { return msg::check_ldap(options, msg::deadline::after(options.time_limit)); });
}

msg::ldap_options aimed_at(const std::string& uri, std::chrono::milliseconds limit = 1s)
{
    msg::ldap_options options;
    options.uri = uri;
    options.time_limit = limit;
    return options;
}

std::string uri_of(const fake_server& server)
{
    return "ldap://127.0.0.1:" + std::to_string(server.port());
}

// 1 within the deadline, a printable reason holding `part` and never the password.
void expect_unhealthy(const timed_outcome& run, const std::string& part, std::chrono::milliseconds limit)
{
    msg_test::expect_failure(run, part, limit + slack);
}

// --- fake listeners -------------------------------------------------------

TEST(LdapProbe, NothingListeningIsNotRunning)
{
    const auto result = run(aimed_at("ldap://127.0.0.1:" + std::to_string(free_port())));
    EXPECT_EQ(result.result.code(), ocf_code::not_running) << result.result.reason();
    EXPECT_TRUE(contains(result.result.reason(), "connection refused"));
    EXPECT_LT(result.elapsed, 1s);
}

TEST(LdapProbe, AbsentLdapiSocketIsNotRunning)
{
    const msg_test::temp_dir dir;
    const auto result = run(aimed_at(msg_test::ldapi_uri_for(dir.path() / "ldapi")));
    EXPECT_EQ(result.result.code(), ocf_code::not_running) << result.result.reason();
    EXPECT_TRUE(contains(result.result.reason(), "socket absent"));
}

TEST(LdapProbe, StalledServerFailsAtTheDeadlineNamingTheStage)
{
    fake_server server(server_script().stall());
    const auto result = run(aimed_at(uri_of(server), 800ms));
    expect_unhealthy(result, "no reply to base search of the rootDSE", 800ms);
    EXPECT_GT(result.elapsed, 500ms);
}

TEST(LdapProbe, StalledBindFailsAtTheDeadline)
{
    fake_server server(server_script().stall());
    const msg_test::temp_dir dir;
    auto options = aimed_at(uri_of(server), 800ms);
    options.bind_dn = "cn=probe,dc=example,dc=com";
    options.bind_password_file = msg_test::write_credentials(dir, "password", test_password);
    expect_unhealthy(run(options), "no reply to bind as 'cn=probe,dc=example,dc=com'", 800ms);
}

TEST(LdapProbe, GarbageReplyFails)
{
    fake_server server(server_script().send("220 mail.example.com ESMTP not LDAP at all\r\n").close());
    expect_unhealthy(run(aimed_at(uri_of(server))), "ldap://127.0.0.1", 1s);
}

TEST(LdapProbe, GarbageThenStallEndsAtTheDeadline)
{
    fake_server server(server_script().send_filler(300).stall());
    expect_unhealthy(run(aimed_at(uri_of(server), 800ms)), "base search of the rootDSE", 800ms);
}

TEST(LdapProbe, CloseMidResponseFails)
{
    // The start of a SearchResultDone (SEQUENCE, messageID 1, tag 0x65),
    // then the connection goes.
    fake_server server(server_script().send(std::string("\x30\x0c\x02\x01\x01\x65\x07\x0a", 8)).close());
    const auto result = run(aimed_at(uri_of(server)));
    expect_unhealthy(result, "closed", 1s);
}

TEST(LdapProbe, StalledTlsHandshakeEndsAtTheDeadline)
{
    fake_server server(server_script().stall());
    const auto result = run(aimed_at("ldaps://127.0.0.1:" + std::to_string(server.port()), 800ms));
    expect_unhealthy(result, "TLS handshake", 800ms);
}

TEST(LdapProbe, UnsafePasswordFileIsMisconfiguredBeforeConnecting)
{
    fake_server server(server_script().stall());
    const msg_test::temp_dir dir;
    using fs::perms;
    auto options = aimed_at(uri_of(server));
    options.bind_dn = "cn=probe,dc=example,dc=com";
    options.bind_password_file = msg_test::write_credentials(
        dir, "password", test_password, perms::owner_read | perms::owner_write | perms::others_read);
    const auto result = run(options);
    EXPECT_EQ(result.result.code(), ocf_code::err_configured);
    EXPECT_TRUE(contains(result.result.reason(),
                         "password file '" + options.bind_password_file.string() + "' has mode 0604"));
    EXPECT_EQ(server.connections(), 0u);
}

TEST(LdapProbe, ContradictoryOptionsAreUsageErrors)
{
    struct bad_case {
        std::function<void(msg::ldap_options&)> change;
        std::string reason;
    };
    for (const auto& [change, reason] : std::vector<bad_case>{
             {[](auto& o) { o.uri = "http://127.0.0.1/"; }, "is not an LDAP URI"},
             {[](auto& o) { o.uri = "ldap://127.0.0.1/ ldapi:///"; }, "must be a single URI"},
             {[](auto& o) { o.uri = "ldaps://127.0.0.1/", o.starttls = true; }, "--starttls needs an ldap:// URI"},
             {[](auto& o) { o.sasl_external = true, o.bind_dn = "cn=x", o.bind_password_file = "/x"; },
              "exclude each other"},
             {[](auto& o) { o.write_probe_attribute = "description"; }, "--write-probe-attr needs --probe-entry"},
             {[](auto& o) { o.provider_uri = "ldap://127.0.0.1:1/"; }, "--provider-uri needs --suffix"},
         }) {
        auto options = aimed_at("ldap://127.0.0.1:1/");
        change(options);
        const auto result = msg::check_ldap(options, msg::deadline::after(1s));
        EXPECT_EQ(result.code(), ocf_code::err_args) << reason;
        EXPECT_TRUE(contains(result.reason(), reason));
    }
}

TEST(LdapProbe, CsnTimesAreParsed)
{
    const auto at = msg::csn_time("20240229235959.123456Z#000000#001#000000");
    ASSERT_TRUE(at.has_value());
    using namespace std::chrono;
    EXPECT_EQ(*at, sys_days(year(2024) / February / 29) + 23h + 59min + 59s + 123456us);
    for (const char* bad : {"", "20240229235959Z", "20240230000000.000000Z#0", "2024022923595x.123456Z#",
                            "20240229235959.123456#000000",
                            // Found by tool_output_fuzz: past 2262 the nanosecond clock overflowed.
                            "40261126143000.123456Z#000000#000#000000", "19691231235959.000000Z#000000#000#000000"})
        EXPECT_FALSE(msg::csn_time(bad).has_value()) << bad;
}

TEST(LdapProbe, CommandLineGivesOcfCodesAndOneReasonLine)
{
    const auto refused = msg_test::run_helper(
        MSG_PROBE_PATH, {"ldap", "--uri", "ldap://127.0.0.1:" + std::to_string(free_port()), "--deadline-ms", "2000"});
    EXPECT_EQ(refused.exit_code, 7);
    EXPECT_EQ(msg_test::lines_of(refused.err).size(), 1u) << refused.err;
    EXPECT_TRUE(refused.out.empty());

    const auto usage = msg_test::run_helper(MSG_PROBE_PATH, {"ldap", "--uri", "ldap://x/", "--bind-dn", "cn=x"});
    EXPECT_EQ(usage.exit_code, 2);
    EXPECT_EQ(msg_test::lines_of(usage.err).size(), 1u) << usage.err;

    fake_server server(server_script().stall());
    const auto stalled
        = msg_test::run_helper(MSG_PROBE_PATH, {"ldap", "--uri", uri_of(server), "--deadline-ms", "700"});
    EXPECT_EQ(stalled.exit_code, 1);
    EXPECT_LT(stalled.elapsed, 700ms + slack);
    EXPECT_TRUE(contains(stalled.err, "no reply to base search of the rootDSE within 700 ms"));
}

// --- a real slapd ------------------------------------------------------------

class RealSlapd : public ::testing::Test {
protected:
    void SetUp() override { slapd_.start(); }

    msg::ldap_options bound(const std::string& uri) const
    {
        auto options = aimed_at(uri, 5s);
        options.suffix = test_slapd::suffix;
        options.bind_dn = test_slapd::root_dn;
        options.bind_password_file = slapd_.password_file();
        return options;
    }

    test_slapd slapd_;
};

TEST_F(RealSlapd, BaseSearchOfRootDseAndSuffixOverTcpAndLdapi)
{
    for (const auto& uri : {slapd_.ldap_uri(), slapd_.ldapi_uri()}) {
        auto options = aimed_at(uri, 5s);
        EXPECT_TRUE(run(options).result.healthy()) << uri;
        options.suffix = test_slapd::suffix;
        const auto result = run(options);
        EXPECT_TRUE(result.result.healthy()) << uri << ": " << result.result.reason();
    }
}

TEST_F(RealSlapd, SaslExternalOverLdapi)
{
    auto options = aimed_at(slapd_.ldapi_uri(), 5s);
    options.sasl_external = true;
    options.suffix = "cn=config";  // readable only to the EXTERNAL identity of root
    const auto result = run(options);
    EXPECT_TRUE(result.result.healthy()) << result.result.reason();
}

TEST_F(RealSlapd, BindWithPasswordFileProbeEntryAndWriteProbe)
{
    auto options = bound(slapd_.ldap_uri());
    options.probe_entry = test_slapd::probe_entry;
    options.write_probe_attribute = "description";
    const auto result = run(options);
    ASSERT_TRUE(result.result.healthy()) << result.result.reason();
    std::string written;
    ASSERT_EQ(slapd_.run_tool("ldapsearch", {"-x", "-LLL", "-b", test_slapd::probe_entry, "-s", "base", "description"},
                              "", &written),
              0);
    // The write probe left the current time, a generalized time.
    EXPECT_TRUE(contains(written, "description: 20")) << written;
    EXPECT_FALSE(contains(written, "written by the write probe"));
}

TEST_F(RealSlapd, WrongPasswordIsAServiceFailureNotMisconfiguration)
{
    const msg_test::temp_dir dir;
    auto options = bound(slapd_.ldap_uri());
    options.bind_password_file = msg_test::write_credentials(dir, "wrong", "not the password\n");
    const auto result = run(options);
    EXPECT_EQ(result.result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.result.reason(), "Invalid credentials (49)"));
    EXPECT_FALSE(contains(result.result.reason(), "not the password"));
}

TEST_F(RealSlapd, WorldReadablePasswordFileIsMisconfigured)
{
    auto options = bound(slapd_.ldap_uri());
    fs::permissions(slapd_.password_file(), fs::perms::others_read, fs::perm_options::add);
    const auto result = run(options);
    EXPECT_EQ(result.result.code(), ocf_code::err_configured);
    EXPECT_TRUE(contains(result.result.reason(), "must be 0600 or stricter"));
}

TEST_F(RealSlapd, MissingSuffixAndProbeEntryFail)
{
    auto options = aimed_at(slapd_.ldap_uri(), 5s);
    options.suffix = "dc=example,dc=org";
    expect_unhealthy(run(options), "suffix 'dc=example,dc=org' does not exist", 5s);

    options.suffix = test_slapd::suffix;
    options.probe_entry = "cn=gone,dc=example,dc=com";
    expect_unhealthy(run(options), "probe entry 'cn=gone,dc=example,dc=com' does not exist", 5s);
}

TEST_F(RealSlapd, AnonymousWriteProbeIsRefused)
{
    auto options = aimed_at(slapd_.ldap_uri(), 5s);
    options.probe_entry = test_slapd::probe_entry;
    options.write_probe_attribute = "description";
    expect_unhealthy(run(options), "Strong(er) authentication required (8)", 5s);
}

TEST_F(RealSlapd, StoppedSlapdFailsWithinTheDeadline)
{
    ASSERT_EQ(::kill(slapd_.pid(), SIGSTOP), 0);
    for (const auto& uri : {slapd_.ldap_uri(), slapd_.ldapi_uri()}) {
        const auto result = run(aimed_at(uri, 1500ms));
        expect_unhealthy(result, "no reply to base search of the rootDSE within 1500 ms", 1500ms);
    }
    const auto bind = run(bound(slapd_.ldap_uri()));  // 5 s
    expect_unhealthy(bind, "no reply to bind as 'cn=admin,dc=example,dc=com'", 5s);
    ::kill(slapd_.pid(), SIGCONT);
}

TEST_F(RealSlapd, MdbUsageOverTheWarningLevelIsDegraded)
{
    auto options = aimed_at(slapd_.ldap_uri(), 5s);
    options.db_dir = slapd_.db_dir();
    options.maxsize_warn_percent = 90;
    EXPECT_TRUE(run(options).result.healthy());
    const auto usage = msg::read_mdb_usage(slapd_.db_dir());
    // Room for 40 more pages: not full, but what is used is over 10%.
    options.maxsize_bytes = usage.used_bytes() + 40 * usage.page_size;
    options.maxsize_warn_percent = 10;
    const auto result = run(options);
    EXPECT_EQ(result.result.code(), ocf_code::degraded) << result.result.reason();
    EXPECT_TRUE(contains(result.result.reason(), "% full:"));

    options.db_dir = slapd_.dir() / "elsewhere";
    fs::create_directory(options.db_dir);
    expect_unhealthy(run(options), "has no data.mdb", 5s);
    EXPECT_FALSE(fs::exists(options.db_dir / "lock.mdb"));
}

// A reader that pins an old snapshot, as a long search or a backup does:
// pages freed after it began cannot be reused until it ends.
class pinned_reader {
public:
    explicit pinned_reader(const fs::path& dir)
    {
        EXPECT_EQ(mdb_env_create(&env_), 0);
        EXPECT_EQ(mdb_env_open(env_, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0600), 0);
        EXPECT_EQ(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn_), 0);
    }
    ~pinned_reader()
    {
        if (txn_ != nullptr)
            mdb_txn_abort(txn_);
        mdb_env_close(env_);
    }
    pinned_reader(const pinned_reader&) = delete;
    pinned_reader& operator=(const pinned_reader&) = delete;

private:
    MDB_env* env_ = nullptr;
    MDB_txn* txn_ = nullptr;
};

// A slapd whose map is lowered to `maxsize` at runtime through cn=config, as
// an operator would, then filled with adds until slapd answers error 80.
void fill_map(test_slapd& slapd, std::uint64_t maxsize)
{
    slapd.start();
    ASSERT_EQ(slapd.modify_config("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcDbMaxSize\n"
                                  "olcDbMaxSize: "
                                  + std::to_string(maxsize) + "\n"),
              0);
    std::string output;
    bool full = false;
    for (int i = 0; i < 200 && !full; ++i) {
        slapd.write_as_root("dn: cn=fill" + std::to_string(i) + ",dc=example,dc=com\nchangetype: add\n"
                            "objectClass: organizationalRole\ncn: fill" + std::to_string(i) + "\ndescription: "
                            + std::string(3000, 'x') + "\n",
                            &output);
        full = contains(output, "(80)");
    }
    ASSERT_TRUE(full) << "the map never filled: " << output;
}

constexpr std::uint64_t small_map = 256 * 1024;

TEST(RealSlapdMapFull, FullMapFailsTheUsageCheck)
{
    test_slapd slapd;
    fill_map(slapd, small_map);
    msg::ldap_options usage = aimed_at(slapd.ldap_uri(), 5s);
    usage.db_dir = slapd.db_dir();
    usage.maxsize_bytes = small_map;
    const auto result = run(usage);
    expect_unhealthy(result, "MDB database " + slapd.db_dir().string() + " is full", 5s);
    EXPECT_TRUE(contains(result.result.reason(), "writes fail with LDAP error 80"));
    // Without the configured maxsize the check would measure against the
    // map size data.mdb records, which LMDB never lowers: the agent passes it.
    usage.maxsize_bytes = 0;
    EXPECT_TRUE(run(usage).result.healthy());
}

TEST(RealSlapdMapFull, FullMapFailsTheWriteProbeWithSlapdsError)
{
    test_slapd slapd;
    slapd.start();
    // Old snapshots stay pinned: every write needs fresh pages, so once the
    // map is full even the probe's small modify fails.
    const pinned_reader backup(slapd.db_dir());
    fill_map(slapd, small_map);

    msg::ldap_options options = aimed_at(slapd.ldap_uri(), 5s);
    options.bind_dn = test_slapd::root_dn;
    options.bind_password_file = slapd.password_file();
    options.probe_entry = test_slapd::probe_entry;
    options.write_probe_attribute = "description";
    const auto probe = run(options);
    expect_unhealthy(probe,
                     "write probe on " + slapd.ldap_uri() + ": modify of description of '" + test_slapd::probe_entry
                         + "' failed: Other (e.g., implementation specific) error (80)",
                     5s);
    EXPECT_TRUE(contains(probe.result.reason(), "maxsize"));
}

TEST(RealSlapdTls, StartTlsAndLdapsVerifyTheServer)
{
    const msg_test::test_ca ca;
    msg_test::slapd_setup setup;
    setup.tls = ca.issue({"127.0.0.1"}, msg_test::valid_for_days(5));
    test_slapd slapd(setup);
    slapd.start();
    const msg_test::temp_dir dir;
    const std::string ca_file = dir.write("ca.pem", ca.certificate_pem());

    auto options = aimed_at(slapd.ldap_uri(), 5s);
    options.starttls = true;
    options.ca_file = ca_file;
    EXPECT_TRUE(run(options).result.healthy());
    options.cert_warn_days = 30;
    const auto expiring = run(options);
    EXPECT_EQ(expiring.result.code(), ocf_code::degraded) << expiring.result.reason();

    auto ldaps = aimed_at(slapd.ldaps_uri(), 5s);
    ldaps.ca_file = ca_file;
    ldaps.suffix = test_slapd::suffix;
    EXPECT_TRUE(run(ldaps).result.healthy());

    // Another CA's trust: the handshake fails, whatever ldap.conf says, and
    // the reason names why and whose certificate (libldap says only
    // "Connect error").
    const msg_test::test_ca stranger;
    options.ca_file = dir.write("stranger.pem", stranger.certificate_pem());
    options.cert_warn_days = 0;
    expect_unhealthy(run(options),
                     "TLS certificate of " + slapd.ldap_uri() + " rejected: unable to get local issuer certificate (",
                     5s);

    options.ca_file = (dir.path() / "missing.pem").string();
    EXPECT_EQ(run(options).result.code(), ocf_code::err_configured);
}

TEST(RealSlapdTls, StartTlsNamesWhyTheCertificateWasRefused)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    const std::string ca_file = dir.write("ca.pem", ca.certificate_pem());
    struct refused_case {
        std::vector<std::string> names;
        msg_test::validity when;
        std::string why;
    };
    for (const auto& [names, when, why] : std::vector<refused_case>{
             {{"127.0.0.1"}, msg_test::expired_yesterday(), "certificate has expired"},
             {{"ldap.example.com"}, msg_test::valid_for_days(30), "IP address mismatch"},
         }) {
        msg_test::slapd_setup setup;
        setup.tls = ca.issue(names, when);
        test_slapd slapd(setup);
        slapd.start();
        auto options = aimed_at(slapd.ldap_uri(), 5s);
        options.starttls = true;
        options.ca_file = ca_file;
        const auto refused = run(options);
        expect_unhealthy(refused, "TLS certificate of " + slapd.ldap_uri() + " rejected: " + why + " (", 5s);
    }
}

msg_test::slapd_setup replicating()
{
    msg_test::slapd_setup setup;
    setup.syncprov = true;
    return setup;
}

TEST(RealSlapdReplication, LagAgainstTheProviderIsMeasuredFromContextCsn)
{
    test_slapd consumer(replicating());
    test_slapd provider(replicating());
    consumer.start();
    provider.start();
    const std::string change = "dn: cn=monitor-probe,dc=example,dc=com\nchangetype: modify\nreplace: description\n"
                               "description: changed\n";
    // The consumer's newest change, then the provider's 2 s later: as if
    // the consumer had stopped replicating for 2 s.
    ASSERT_EQ(consumer.write_as_root(change), 0);
    std::this_thread::sleep_for(2s);
    ASSERT_EQ(provider.write_as_root(change), 0);

    auto options = aimed_at(consumer.ldap_uri(), 5s);
    options.suffix = test_slapd::suffix;
    options.provider_uri = provider.ldap_uri();
    options.max_replication_lag = 1s;
    const auto over = run(options);
    expect_unhealthy(over, "over the limit of 1 s", 5s);
    EXPECT_TRUE(contains(over.result.reason(), "replication lag of " + consumer.ldap_uri() + " behind "));

    options.max_replication_lag = 60s;
    options.warn_replication_lag = 1s;
    const auto warned = run(options);
    EXPECT_EQ(warned.result.code(), ocf_code::degraded) << warned.result.reason();
    EXPECT_TRUE(contains(warned.result.reason(), "over the warning level of 1 s"));

    options.warn_replication_lag = 30s;
    EXPECT_TRUE(run(options).result.healthy());

    // Seen from the provider, the consumer is ahead: no lag.
    auto reverse = options;
    reverse.uri = provider.ldap_uri();
    reverse.provider_uri = consumer.ldap_uri();
    reverse.warn_replication_lag = 1s;
    EXPECT_TRUE(run(reverse).result.healthy());

    provider.stop();
    const auto unreachable = run(options);
    EXPECT_EQ(unreachable.result.code(), ocf_code::degraded) << unreachable.result.reason();
    EXPECT_TRUE(contains(unreachable.result.reason(), "replication lag unknown: provider unreachable"));
}

} // namespace
