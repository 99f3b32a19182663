// The real msg-probe binary against hostile servers, one table for every
// protocol it speaks: slowloris replies, endless multiline replies, invalid
// UTF-8 and NUL bytes, a reply of several MiB, certificates for another
// name, expired or self-signed, and STARTTLS stripped from the capability
// list. Whatever the server does, the probe must end inside its deadline
// with exit 1 and one reason line that names the problem and holds no
// secret, its memory bounded. Per-protocol dialogue tests live in
// <protocol>_probe_test.cpp; the certificate cases shared by every protocol
// live here only.
#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg_test::fake_server;
using msg_test::reaction;
using msg_test::server_script;
using msg_test::test_password;

// The probe's whole budget in every case: short, so the table stays within
// its minute, long enough that a byte a second gets a second byte out.
constexpr auto probe_deadline = 2000ms;
// Start-up and scheduling on a loaded shared 2-core machine: a probe that
// ignored its deadline would run on for the 8 s run_helper gives it.
constexpr auto slack = 1500ms;
// The hostile reply size: far more than any line, literal or LDAP message
// limit, and well over the memory headroom below.
constexpr std::size_t huge_reply_bytes = 32u << 20;
// Peak RSS a probe may add over its own cost of failing at once against
// nothing: TLS set up (OpenSSL about 3 MiB; for LDAP also libldap's GnuTLS,
// about 8 MiB in all, measured), line buffers and a certificate chain fit;
// the 32 MiB reply, buffered, would not. Under AddressSanitizer
// (scripts/test-sanitized) redzones and the quarantine, which holds freed
// memory back instead of reusing it, add a few MiB more (LDAP's GnuTLS
// most); twice the headroom still rules the buffered reply out.
#if defined(__SANITIZE_ADDRESS__) // gcc
#define MSG_TEST_UNDER_ASAN 1
#elif defined(__has_feature) // clang
#if __has_feature(address_sanitizer)
#define MSG_TEST_UNDER_ASAN 1
#endif
#endif
#ifdef MSG_TEST_UNDER_ASAN
constexpr long rss_headroom_kib = 24 * 1024;
#else
constexpr long rss_headroom_kib = 12 * 1024;
#endif

enum class tls_use { none, implicit, starttls };

// How a line protocol opens and lists its capabilities: enough to script
// every hostile turn for it.
struct dialect {
    std::string greeting;           // a healthy first line
    std::string refusal;            // a failing first line's start, before the text
    bool tagged;                    // IMAP: commands and final replies carry tags
    std::string capability_command; // what the client asks first
    std::string list_opening;       // the capability reply's first line ("" for IMAP)
    std::string list_item;          // one more capability line, as endless replies repeat it
    std::string list_end;           // the reply's end (IMAP: the tagged OK, without the tag)
    std::string starttls_item;      // the line that offers STARTTLS
    std::string starttls_command;
    std::string starttls_go;        // the go-ahead (IMAP: tagged, without the tag)
};

const dialect smtp_speech{"220 mail.example.com ESMTP ready\r\n",
                          "554 5.3.2 ",
                          false,
                          "EHLO",
                          "250-mail.example.com\r\n",
                          "250-X-FILLER\r\n",
                          "250 8BITMIME\r\n",
                          "250-STARTTLS\r\n",
                          "STARTTLS",
                          "220 2.0.0 Ready to start TLS\r\n"};
dialect lmtp_speech_of()
{
    dialect lmtp = smtp_speech;
    lmtp.greeting = "220 mail.example.com LMTP ready\r\n";
    lmtp.capability_command = "LHLO";
    return lmtp;
}
const dialect lmtp_speech = lmtp_speech_of();
const dialect imap_speech{"* OK IMAP4rev1 ready\r\n",
                          "* BYE ",
                          true,
                          "CAPABILITY",
                          "",
                          "* CAPABILITY IMAP4rev1 LITERAL+\r\n",
                          "OK Capability completed.\r\n",
                          "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n",
                          "STARTTLS",
                          "OK Begin TLS negotiation now.\r\n"};
const dialect pop3_speech{"+OK POP3 ready\r\n",
                          "-ERR ",
                          false,
                          "CAPA",
                          "+OK\r\n",
                          "X-FILLER\r\n",
                          "TOP\r\n.\r\n",
                          "STLS\r\n",
                          "STLS",
                          "+OK Begin TLS negotiation now.\r\n"};
const dialect nntp_speech{"200 news.example.com ready (posting ok)\r\n",
                          "502 ",
                          false,
                          "CAPABILITIES",
                          "101 Capability list:\r\nVERSION 2\r\nREADER\r\n",
                          "X-FILLER\r\n",
                          "POST\r\n.\r\n",
                          "STARTTLS\r\n",
                          "STARTTLS",
                          "382 Begin TLS negotiation now\r\n"};

// The certificates the TLS rows present, made once: key generation is the
// slow part of a TLS test.
struct test_certificates {
    msg_test::test_ca ca;
    msg_test::temp_dir dir;
    std::string ca_file = dir.write("ca.pem", ca.certificate_pem());
    msg_test::pem_credentials another_name = ca.issue({"mail.other.example"}, msg_test::valid_for_days(30));
    msg_test::pem_credentials expired = ca.issue({"localhost", "127.0.0.1"}, msg_test::expired_yesterday());
    msg_test::pem_credentials own_issuer = msg_test::self_signed({"localhost", "127.0.0.1"},
                                                                 msg_test::valid_for_days(30));
    // The secrets the probes get: a login for the line protocols, a bind
    // password for LDAP; no reason may show either.
    std::string credentials_file = msg_test::write_credentials(dir, "credentials",
                                                               std::string("probe\n") + test_password + "\n");
    std::string password_file = msg_test::write_credentials(dir, "password", std::string(test_password) + "\n");
};

const test_certificates& certificates()
{
    static const test_certificates made;
    return made;
}

// Where and how the probe connects.
struct endpoint {
    std::uint16_t port;
    tls_use tls;
    std::uint16_t companion_port; // mailflow's other server
};

// One thing msg-probe probes: its command line, and how its server speaks
// (nullptr: LDAP, whose BER the scripts write byte by byte).
struct target {
    std::string name;
    const dialect* speech;
    std::function<std::vector<std::string>(const endpoint&)> args;
    bool imap_companion = false; // mailflow's SMTP leg: a healthy mailbox server is probed first
};

std::string tls_flag(tls_use tls, const std::string& prefix = "--")
{
    return tls == tls_use::implicit ? prefix + "tls" : prefix + "starttls";
}

// `smtp`, `lmtp`, `imap`, `pop3` or `nntp` at the hostile server.
std::function<std::vector<std::string>(const endpoint&)> direct(const std::string& subcommand, bool logs_in)
{
    return [subcommand, logs_in](const endpoint& at) {
        std::vector<std::string> args{subcommand, "--host", "127.0.0.1", "--port", std::to_string(at.port),
                                      "--ca-file", certificates().ca_file,
                                      "--deadline-ms", std::to_string(probe_deadline.count())};
        if (at.tls != tls_use::none)
            args.push_back(tls_flag(at.tls));
        if (logs_in)
            args.insert(args.end(), {"--credentials-file", certificates().credentials_file});
        return args;
    };
}

// `mailflow` with its `hostile` leg ("smtp" or "imap") at the hostile
// server and the other at the companion port.
std::function<std::vector<std::string>(const endpoint&)> mailflow(const std::string& hostile)
{
    return [hostile](const endpoint& at) {
        const std::string other = hostile == "smtp" ? "imap" : "smtp";
        std::vector<std::string> args{"mailflow", "--" + hostile + "-port", std::to_string(at.port),
                                      "--" + other + "-port", std::to_string(at.companion_port),
                                      "--probe-address", "probe@example.com",
                                      "--credentials-file", certificates().credentials_file,
                                      "--smtp-credentials-file", certificates().credentials_file,
                                      "--ca-file", certificates().ca_file,
                                      "--deadline-ms", std::to_string(probe_deadline.count())};
        if (at.tls != tls_use::none)
            args.push_back(tls_flag(at.tls, "--" + hostile + "-"));
        return args;
    };
}

std::vector<std::string> ldap_args(const endpoint& at)
{
    // The fake speaks no BER extended operation: every TLS row is ldaps.
    const std::string scheme = at.tls == tls_use::none ? "ldap" : "ldaps";
    return {"ldap", "--uri", scheme + "://127.0.0.1:" + std::to_string(at.port),
            "--ca-file", certificates().ca_file,
            "--bind-dn", "cn=probe,dc=example,dc=com",
            "--bind-password-file", certificates().password_file,
            "--deadline-ms", std::to_string(probe_deadline.count())};
}

const std::vector<target>& targets()
{
    static const std::vector<target> all{
        {"Smtp", &smtp_speech, direct("smtp", false)},
        {"Lmtp", &lmtp_speech, direct("lmtp", false)},
        {"Imap", &imap_speech, direct("imap", true)},
        {"Pop3", &pop3_speech, direct("pop3", true)},
        {"Nntp", &nntp_speech, direct("nntp", true)},
        {"MailflowImap", &imap_speech, mailflow("imap")},
        {"MailflowSmtp", &smtp_speech, mailflow("smtp"), true},
        {"Ldap", nullptr, ldap_args},
    };
    return all;
}

// -- scripts

// The greeting, then the capability command answered with `items` between
// the dialect's opening and end.
server_script listed(const dialect& speech, const std::string& items)
{
    server_script script;
    script.send(speech.greeting);
    if (speech.tagged)
        return script.expect_tagged(speech.capability_command).send(items).send_tagged(speech.list_end);
    return script.expect(speech.capability_command).send(speech.list_opening + items + speech.list_end);
}

// An LDAPMessage (message id 1) holding a BindResponse with `result_code`
// and `diagnostic` (under 100 bytes: short-form BER lengths).
std::string ldap_bind_response(int result_code, const std::string& diagnostic)
{
    std::string bind;
    bind += std::string("\x0a\x01", 2) + static_cast<char>(result_code);
    bind += std::string("\x04\x00", 2);
    bind += "\x04" + std::string(1, static_cast<char>(diagnostic.size())) + diagnostic;
    const std::string operation = "\x61" + std::string(1, static_cast<char>(bind.size())) + bind;
    const std::string body = std::string("\x02\x01\x01", 3) + operation;
    return "\x30" + std::string(1, static_cast<char>(body.size())) + body;
}

// Keeps the connection open and silent, as stall() does, but records what
// the client sends meanwhile: a login sent to a hostile server must show.
reaction listen_only(const std::string&)
{
    return {};
}

// Bytes no protocol allows where a reply should start: invalid UTF-8
// (a lone continuation byte, an overlong form, 0xff) and NUL.
const std::string bad_bytes("\x80\xc0\xaf\xff\x00\xfe", 6);

struct row {
    std::string name;
    tls_use tls;
    // What the one reason line must match (ECMAScript, case-insensitive):
    // the problem named, in the probe's words.
    std::string reason;
    std::function<server_script(const target&)> script;
    // The reason for LDAP, where libldap's words differ (empty: as `reason`).
    std::string ldap_reason{};
    // LDAP has no lines to repeat and no capability list to strip STARTTLS from.
    bool lines_only = false;
};

// A reply that never ends in time, a byte a second.
server_script slowloris(const target& probed)
{
    server_script script;
    if (probed.speech == nullptr)
        return script.trickle(ldap_bind_response(0, ""), 1s);
    return script.trickle(probed.speech->greeting, 1s);
}

// The capability list, line after line, forever.
server_script endless(const target& probed)
{
    const dialect& speech = *probed.speech;
    server_script script;
    script.send(speech.greeting);
    if (speech.tagged)
        return script.expect_tagged(speech.capability_command).repeat(speech.list_item);
    return script.expect(speech.capability_command).send(speech.list_opening).repeat(speech.list_item);
}

// Invalid UTF-8 and NUL where the greeting's status should be.
server_script garbage(const target&)
{
    server_script script;
    return script.send(bad_bytes + " \xc3\x28 garbage\r\n").respond(listen_only);
}

// A refusal whose text holds invalid UTF-8 and NUL: the reason may quote
// it, but only as printable ASCII.
server_script refusal_with_bad_bytes(const target& probed)
{
    server_script script;
    if (probed.speech == nullptr)
        return script.send(ldap_bind_response(53, "refused " + bad_bytes + " here")).respond(listen_only);
    return script.send(probed.speech->refusal + "refused " + bad_bytes + " here\r\n").respond(listen_only);
}

// The greeting's first bytes, then several MiB without a line end (LDAP:
// a message announcing that length, then its bytes).
server_script huge_reply(const target& probed)
{
    server_script script;
    if (probed.speech == nullptr)
        return script.send(std::string("\x30\x84\x00\x80\x00\x00", 6)).send_filler(huge_reply_bytes).respond(listen_only);
    return script.send(probed.speech->greeting.substr(0, 4)).send_filler(huge_reply_bytes).respond(listen_only);
}

// A TLS handshake with `credentials` where the probe asked for TLS from the first byte.
std::function<server_script(const target&)> presenting(
    msg_test::pem_credentials test_certificates::*credentials)
{
    return [credentials](const target&) -> server_script {
        server_script script;
        return script.start_tls(certificates().*credentials).respond(listen_only);
    };
}

// STARTTLS offered and agreed to, then a self-signed certificate (LDAP:
// ldaps, as the fake speaks no BER extended operation).
server_script self_signed_after_starttls(const target& probed)
{
    server_script script;
    if (probed.speech == nullptr)
        return script.start_tls(certificates().own_issuer).respond(listen_only);
    const dialect& speech = *probed.speech;
    script = listed(speech, speech.starttls_item);
    if (speech.tagged)
        script.expect_tagged(speech.starttls_command).send_tagged(speech.starttls_go);
    else
        script.expect(speech.starttls_command).send(speech.starttls_go);
    return script.start_tls(certificates().own_issuer).respond(listen_only);
}

// A capability list without STARTTLS where the probe requires it: a
// man in the middle's downgrade.
server_script starttls_stripped(const target& probed)
{
    return listed(*probed.speech, probed.speech->tagged ? "* CAPABILITY IMAP4rev1 LITERAL+\r\n" : "").respond(listen_only);
}

const std::vector<row>& rows()
{
    static const std::vector<row> all{
        {"SlowlorisReply", tls_use::none, "no ([A-Z0-9]+ )?(banner|greeting|answer) within [0-9]+ ms", slowloris},
        {"EndlessMultilineReply", tls_use::none, "longer than [0-9]+ (lines|responses)", endless, {}, true},
        {"InvalidUtf8AndNulInsteadOfGreeting", tls_use::none,
         "malformed [A-Z0-9]+ (banner|greeting): \\?+ \\?\\( garbage", garbage, "or no LDAP"},
        // An LDAP octet string with a NUL is no string: libldap refuses the whole result.
        {"RefusalWithInvalidUtf8AndNul", tls_use::none, "refused \\?+ here", refusal_with_bad_bytes,
         "malformed result for bind"},
        {"SeveralMibReply", tls_use::none, "(banner|greeting): line longer than [0-9]+ bytes", huge_reply,
         "sent a message over [0-9]+ bytes"},
        {"CertificateForAnotherName", tls_use::implicit, "rejected: IP address mismatch \\(CN=mail.other.example\\)",
         presenting(&test_certificates::another_name)},
        {"ExpiredCertificate", tls_use::implicit, "rejected: certificate has expired \\(CN=localhost\\)",
         presenting(&test_certificates::expired)},
        {"SelfSignedCertificate", tls_use::starttls, "rejected: self-signed certificate \\(CN=localhost\\)",
         self_signed_after_starttls},
        {"StarttlsStripped", tls_use::starttls, "(STARTTLS|STLS) not offered", starttls_stripped, {}, true},
    };
    return all;
}

// -- the mailbox server mailflow's SMTP leg needs before it submits

// Answers LOGIN, SELECT, searches and LOGOUT as a healthy IMAP server does.
server_script healthy_mailbox()
{
    server_script script;
    script.send("* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] ready\r\n").respond([](const std::string& line) {
        const auto space = line.find(' ');
        const std::string tag = line.substr(0, space);
        const std::string command = space == std::string::npos ? "" : line.substr(space + 1);
        if (command.rfind("CAPABILITY", 0) == 0)
            return reaction{"* CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS\r\n" + tag + " OK done\r\n"};
        if (command.rfind("SELECT", 0) == 0)
            return reaction{"* 0 EXISTS\r\n* OK [UIDVALIDITY 1700000000] ok\r\n" + tag + " OK [READ-WRITE] done\r\n"};
        if (command.rfind("UID SEARCH", 0) == 0 || command.rfind("SEARCH", 0) == 0)
            return reaction{"* SEARCH\r\n" + tag + " OK done\r\n"};
        if (command.rfind("LOGOUT", 0) == 0)
            return reaction{"* BYE\r\n" + tag + " OK done\r\n", reaction::then::close};
        return reaction{tag + " OK done\r\n"};
    });
    return script;
}

// -- the table

struct hostile_case {
    const target* probed;
    const row* turn;
};

std::vector<hostile_case> applicable_cases()
{
    std::vector<hostile_case> cases;
    for (const target& probed : targets()) {
        for (const row& turn : rows()) {
            if (probed.speech != nullptr || !turn.lines_only)
                cases.push_back({&probed, &turn});
        }
    }
    return cases;
}

// A msg-probe run and its peak resident set.
struct measured_run {
    msg_test::helper_run run;
    long max_rss_kib = 0;
};

// Runs msg-probe with `args` under GNU time, which reports its child's
// ru_maxrss. Not wait4 on our own child: a child spawned from this test
// process (threads, certificates, fake servers: tens of MiB) carries this
// process's peak into its ru_maxrss across exec; time's is a few hundred KiB.
measured_run run_measured(const std::vector<std::string>& args, std::chrono::milliseconds limit)
{
    const msg_test::temp_dir dir;
    const std::string report = (dir.path() / "rss").string();
    std::vector<std::string> timed_args{"-f", "%M", "-o", report, MSG_PROBE_PATH};
    timed_args.insert(timed_args.end(), args.begin(), args.end());
    measured_run measured{msg_test::run_helper("/usr/bin/time", timed_args, limit)};
    // The last line is %M; "Command exited with non-zero status N" may precede it.
    std::ifstream in(report);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && std::isdigit(static_cast<unsigned char>(line.front())) != 0)
            measured.max_rss_kib = std::stol(line);
    }
    return measured;
}

// What msg-probe costs when it fails at once: connection refused.
long baseline_rss_kib()
{
    static const long measured
        = run_measured({"smtp", "--port", std::to_string(msg_test::free_port()), "--ca-file", certificates().ca_file},
                       10s)
              .max_rss_kib;
    return measured;
}

class HostileServer : public ::testing::TestWithParam<hostile_case> {};

TEST_P(HostileServer, EndsInsideDeadlineWithOneReasonNoSecretBoundedMemory)
{
    const target& probed = *GetParam().probed;
    const row& turn = *GetParam().turn;
    std::optional<fake_server> mailbox;
    if (probed.imap_companion)
        mailbox.emplace(healthy_mailbox());
    fake_server hostile(turn.script(probed));
    const std::uint16_t companion = mailbox ? mailbox->port() : msg_test::free_port();

    const auto [run, max_rss_kib] = run_measured(probed.args({hostile.port(), turn.tls, companion}), 8s);

    EXPECT_FALSE(run.killed_at_limit);
    EXPECT_EQ(run.exit_code, 1) << run.err;
    const auto lines = msg_test::lines_of(run.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr: " << run.err;
    const std::string& reason = lines.front();
    RecordProperty("reason", reason);
    RecordProperty("max_rss_kib", std::to_string(max_rss_kib));
    const std::string& expected
        = probed.speech == nullptr && !turn.ldap_reason.empty() ? turn.ldap_reason : turn.reason;
    EXPECT_TRUE(std::regex_search(reason, std::regex(expected, std::regex::icase)))
        << "reason \"" << reason << "\" does not match /" << expected << "/";
    EXPECT_TRUE(msg_test::printable_ascii(reason));
    // Not even a part of it: a reason cut at its length limit could keep a prefix.
    const std::string secret_part = std::string(test_password).substr(0, 4);
    EXPECT_FALSE(msg_test::contains(run.err, secret_part));
    EXPECT_FALSE(msg_test::contains(run.out, secret_part));
    // Nor did any login reach the hostile server (AUTH PLAIN would carry
    // the password base64-encoded, past the search above).
    const std::regex login_command("^([^ ]+ )?(AUTH|AUTHINFO|LOGIN|PASS|USER)( |$)", std::regex::icase);
    for (const std::string& line : hostile.received()) {
        EXPECT_FALSE(msg_test::contains(line, secret_part)) << "the password went to a hostile server";
        EXPECT_FALSE(std::regex_search(line, login_command)) << "a login went to a hostile server: " << line;
    }
    EXPECT_LE(run.elapsed, probe_deadline + slack);
    EXPECT_GT(max_rss_kib, 0) << "no peak RSS from /usr/bin/time";
    EXPECT_LT(max_rss_kib, baseline_rss_kib() + rss_headroom_kib)
        << "peak RSS " << max_rss_kib << " KiB, baseline " << baseline_rss_kib() << " KiB";
    if (mailbox) {
        EXPECT_EQ(mailbox->problems(), std::vector<std::string>{});
    }
}

INSTANTIATE_TEST_SUITE_P(EveryProtocol, HostileServer, ::testing::ValuesIn(applicable_cases()),
                         [](const ::testing::TestParamInfo<hostile_case>& param_info) {
                             return param_info.param.probed->name + param_info.param.turn->name;
                         });

} // namespace
