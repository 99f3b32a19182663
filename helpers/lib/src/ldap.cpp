#include "msg/ldap.hpp"

#include "msg/credentials.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/mdb_usage.hpp"
#include "msg/reply_text.hpp"
#include "msg/tls.hpp"

#include <ldap.h>
#include <openldap.h>
#include <openssl/x509.h>
#include <sasl/sasl.h>

#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace msg {

namespace {

// Debian's libldap default for ldapi:/// (LDAPI_SOCK).
constexpr const char* default_ldapi_socket = "/var/run/slapd/ldapi";

// How much earlier than the caller's deadline libldap's own timeouts fire,
// so that they, not the abandoning backstop, report the stage precisely.
std::chrono::milliseconds inner_margin(std::chrono::milliseconds limit)
{
    return std::min<std::chrono::milliseconds>(std::chrono::milliseconds(200), limit / 10);
}

std::string within(std::chrono::milliseconds limit)
{
    return " within " + std::to_string(limit.count()) + " ms";
}

std::string quote_dn(std::string_view dn)
{
    return "'" + printable_excerpt(dn) + "'";
}

timeval to_timeval(steady_clock::duration left)
{
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(left).count();
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(micros / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(micros % 1'000'000);
    return tv;
}

// Where an LDAP URI points, as ldap_url_parse reads it.
struct ldap_target {
    std::string uri;
    std::string scheme;       // "ldap", "ldaps" or "ldapi"
    std::string host;         // ldap, ldaps: name or address
    std::uint16_t port = 0;   // ldap, ldaps: 389 or 636 unless given
    std::string socket_path;  // ldapi
};

ldap_target parse_uri(const std::string& uri, std::string_view option)
{
    const auto bad = [&](const std::string& why) {
        return check_failure(
            outcome(ocf_code::err_args, std::string(option) + " '" + printable_excerpt(uri) + "' " + why));
    };
    if (uri.find_first_of(" \t,") != std::string::npos)
        throw bad("must be a single URI");
    LDAPURLDesc* parsed = nullptr;
    if (ldap_url_parse(uri.c_str(), &parsed) != LDAP_URL_SUCCESS || parsed == nullptr)
        throw bad("is not an LDAP URI (ldap://, ldaps:// or ldapi://)");
    const std::unique_ptr<LDAPURLDesc, void (*)(LDAPURLDesc*)> owned(parsed, ldap_free_urldesc);
    ldap_target target;
    target.uri = uri;
    target.scheme = parsed->lud_scheme != nullptr ? parsed->lud_scheme : "";
    const std::string host = parsed->lud_host != nullptr ? parsed->lud_host : "";
    if (target.scheme == "ldapi") {
        target.socket_path = host.empty() ? default_ldapi_socket : host;
    } else if (target.scheme == "ldap" || target.scheme == "ldaps") {
        target.host = host.empty() ? "127.0.0.1" : host;
        const int port = parsed->lud_port != 0 ? parsed->lud_port : (target.scheme == "ldaps" ? 636 : 389);
        if (port < 1 || port > 65535)
            throw bad("has no valid port");
        target.port = static_cast<std::uint16_t>(port);
    } else {
        throw bad("is not an ldap://, ldaps:// or ldapi:// URI");
    }
    return target;
}

// The step a check is in, shared with the caller that may abandon it.
struct check_progress {
    std::mutex mutex;
    std::condition_variable finished;
    std::string stage;
    std::optional<outcome> result;

    void enter(std::string now)
    {
        log_debug("ldap: " + now);
        const std::lock_guard lock(mutex);
        stage = std::move(now);
    }
};

struct message_deleter {
    void operator()(LDAPMessage* message) const { ldap_msgfree(message); }
};
using message_ptr = std::unique_ptr<LDAPMessage, message_deleter>;

// What the server answered to one operation.
struct ldap_reply {
    int code = LDAP_SUCCESS;
    std::string diagnostic;            // the server's text, printable
    std::vector<std::string> values;   // of the one attribute asked for, from the entry found
    bool entry_found = false;
};

std::string describe_code(int code)
{
    return std::string(ldap_err2string(code)) + " (" + std::to_string(code) + ")";
}

std::string describe_reply(const ldap_reply& reply)
{
    std::string text = describe_code(reply.code);
    if (!reply.diagnostic.empty())
        text += ": " + reply.diagnostic;
    return text;
}

// The answer to SASL's questions during an EXTERNAL bind: the defaults
// (an empty authorization identity), as ldapwhoami -Q gives them.
int quiet_sasl_interaction(LDAP* /*ld*/, unsigned /*flags*/, void* /*defaults*/, void* prompts)
{
    for (auto* prompt = static_cast<sasl_interact_t*>(prompts); prompt->id != SASL_CB_LIST_END; ++prompt) {
        const char* answer = prompt->defresult != nullptr ? prompt->defresult : "";
        prompt->result = answer;
        prompt->len = static_cast<unsigned>(std::strlen(answer));
    }
    return LDAP_SUCCESS;
}

// The largest LDAP message the probe takes: its replies (a bind, base
// searches, one entry, contextCSN) are a few KiB, and libldap buffers a
// whole message before decoding it, as large as the server's BER length
// says, so a hostile server could make it allocate gigabytes.
constexpr ber_len_t max_message_bytes = 1 << 20;

// One LDAP connection, every operation asynchronous and awaited with
// ldap_result bounded by the deadline (libldap's network timeout alone does
// not bound a server that accepted the connection and then froze).
class ldap_session {
public:
    ldap_session(ldap_target target, const ldap_options& options, const deadline& until,
                 std::chrono::milliseconds limit, check_progress& progress)
        : target_(std::move(target)), options_(options), until_(until), limit_(limit), progress_(progress)
    {
    }
    ~ldap_session()
    {
        if (ld_ != nullptr)
            ldap_unbind_ext(ld_, nullptr, nullptr);
    }
    ldap_session(const ldap_session&) = delete;
    ldap_session& operator=(const ldap_session&) = delete;

    const std::string& uri() const { return target_.uri; }

    // Connects, handshakes (ldaps://) or runs StartTLS (`starttls`); the
    // certificate's verdict (ok, or degraded when it expires soon).
    outcome open(bool starttls)
    {
        progress_.enter("connect to " + target_.uri);
        line_channel channel(until_);
        if (target_.scheme == "ldapi")
            channel.connect_unix(target_.socket_path);
        else
            channel.connect_tcp(target_.host, target_.port);
        const int fd = channel.release_descriptor();
        const int proto = target_.scheme == "ldapi" ? LDAP_PROTO_IPC : LDAP_PROTO_TCP;
        if (const int rc = ldap_init_fd(fd, proto, target_.uri.c_str(), &ld_); rc != LDAP_SUCCESS) {
            ::close(fd);
            ld_ = nullptr;
            fail("cannot set up libldap: " + describe_code(rc));
        }
        set_option(LDAP_OPT_PROTOCOL_VERSION, LDAP_VERSION3);
        Sockbuf* socket_buffer = nullptr;
        ber_len_t max_incoming = max_message_bytes;
        if (ldap_get_option(ld_, LDAP_OPT_SOCKBUF, &socket_buffer) != LDAP_OPT_SUCCESS || socket_buffer == nullptr
            || ber_sockbuf_ctrl(socket_buffer, LBER_SB_OPT_SET_MAX_INCOMING, &max_incoming) != 1)
            fail("cannot bound libldap's message size");
        // A referral would send libldap to another server, unbounded.
        if (ldap_set_option(ld_, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
            fail("cannot turn off referral chasing");
        set_timeouts();

        if (target_.scheme == "ldaps" || starttls)
            configure_tls();
        if (target_.scheme == "ldaps") {
            handshake("TLS handshake with " + target_.uri);
        } else if (starttls) {
            const int msgid = send("StartTLS", ldap_start_tls(ld_, nullptr, nullptr, &msgid_));
            const ldap_reply reply = finish(msgid, "StartTLS", nullptr);
            if (reply.code != LDAP_SUCCESS)
                fail(target_.uri + " refused StartTLS: " + describe_reply(reply));
            handshake("TLS handshake after StartTLS with " + target_.uri);
        }
        return certificate_verdict();
    }

    void simple_bind(const credentials& identity)
    {
        const std::string stage = "bind as " + quote_dn(identity.username());
        berval password{static_cast<ber_len_t>(identity.password().size()),
                        const_cast<char*>(identity.password().data())};
        const int msgid = send(stage, ldap_sasl_bind(ld_, identity.username().c_str(), LDAP_SASL_SIMPLE, &password,
                                                     nullptr, nullptr, &msgid_));
        const ldap_reply reply = finish(msgid, stage, nullptr);
        if (reply.code != LDAP_SUCCESS)
            fail(stage + " rejected by " + target_.uri + ": " + describe_reply(reply));
    }

    void sasl_external_bind()
    {
        const std::string stage = "SASL EXTERNAL bind";
        progress_.enter(stage + " to " + target_.uri);
        LDAPMessage* answer = nullptr;
        for (;;) {
            const char* mechanism = nullptr;
            int msgid = 0;
            const int rc = ldap_sasl_interactive_bind(ld_, nullptr, "EXTERNAL", nullptr, nullptr, LDAP_SASL_QUIET,
                                                      quiet_sasl_interaction, nullptr, answer, &mechanism, &msgid);
            ldap_msgfree(answer);
            answer = nullptr;
            if (rc == LDAP_SUCCESS)
                return;
            if (rc != LDAP_SASL_BIND_IN_PROGRESS) {
                ldap_reply reply;
                reply.code = rc;
                reply.diagnostic = diagnostic_message();
                fail(stage + " rejected by " + target_.uri + ": " + describe_reply(reply));
            }
            answer = await(msgid, stage).release();
        }
    }

    // Base-scope search of `dn` ("" is the rootDSE), asking for `attribute`
    // (nullptr: no attributes).
    ldap_reply search_base(const std::string& dn, const char* attribute, const std::string& stage)
    {
        char no_attributes[] = "1.1";
        char* attributes[] = {attribute != nullptr ? const_cast<char*>(attribute) : no_attributes, nullptr};
        // The server's own time limit, in whole seconds, so it gives up too.
        timeval server_limit{static_cast<time_t>(std::max<long long>(
                                 1, std::chrono::duration_cast<std::chrono::seconds>(until_.remaining()).count())),
                             0};
        char filter[] = "(objectClass=*)";
        const int msgid = send(stage, ldap_search_ext(ld_, dn.c_str(), LDAP_SCOPE_BASE, filter, attributes, 0, nullptr,
                                                      nullptr, &server_limit, 1, &msgid_));
        return finish(msgid, stage, attribute);
    }

    ldap_reply modify_replace(const std::string& dn, const std::string& attribute, const std::string& value,
                              const std::string& stage)
    {
        std::string type = attribute;
        std::string text = value;
        char* values[] = {text.data(), nullptr};
        LDAPMod change{};
        change.mod_op = LDAP_MOD_REPLACE;
        change.mod_type = type.data();
        change.mod_values = values;
        LDAPMod* changes[] = {&change, nullptr};
        const int msgid = send(stage, ldap_modify_ext(ld_, dn.c_str(), changes, nullptr, nullptr, &msgid_));
        return finish(msgid, stage, nullptr);
    }

private:
    [[noreturn]] void fail(const std::string& reason) const { throw check_failure(outcome::failed(reason)); }

    void set_option(int option, int value)
    {
        if (ldap_set_option(ld_, option, &value) != LDAP_OPT_SUCCESS)
            fail("cannot set libldap option " + std::to_string(option));
    }

    // This handle's TLS policy, in a context of its own so that nothing from
    // ldap.conf (TLS_REQCERT never, another TLS_CACERT) applies: verify the
    // certificate and the URI's host name, TLS 1.2 or later, trust anchors
    // from ca_file or the system store.
    void configure_tls()
    {
        set_option(LDAP_OPT_X_TLS_REQUIRE_CERT, verify_peer_ ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER);
        set_option(LDAP_OPT_X_TLS_PROTOCOL_MIN, LDAP_OPT_X_TLS_PROTOCOL_TLS1_2);
        if (!options_.ca_file.empty()
            && ldap_set_option(ld_, LDAP_OPT_X_TLS_CACERTFILE, options_.ca_file.c_str()) != LDAP_OPT_SUCCESS)
            throw check_failure(outcome::misconfigured("libldap cannot use CA file '" + options_.ca_file + "'"));
        const int client = 0;
        if (ldap_set_option(ld_, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS) {
            std::string reason = "libldap cannot set up TLS";
            if (!options_.ca_file.empty())
                reason += " with CA file '" + options_.ca_file + "'";
            if (const std::string detail = diagnostic_message(); !detail.empty())
                reason += ": " + detail;
            throw check_failure(outcome::misconfigured(reason));
        }
    }

    // libldap's own timeouts, from what is left: the network timeout bounds
    // its TLS handshake, the operation timeout anything it waits for itself.
    void set_timeouts()
    {
        const timeval left = to_timeval(until_.remaining());
        if (ldap_set_option(ld_, LDAP_OPT_NETWORK_TIMEOUT, &left) != LDAP_OPT_SUCCESS
            || ldap_set_option(ld_, LDAP_OPT_TIMEOUT, &left) != LDAP_OPT_SUCCESS)
            fail("cannot set libldap timeouts");
    }

    std::string diagnostic_message() const
    {
        char* text = nullptr;
        if (ldap_get_option(ld_, LDAP_OPT_DIAGNOSTIC_MESSAGE, &text) != LDAP_OPT_SUCCESS || text == nullptr)
            return {};
        std::string result = printable_excerpt(text);
        ldap_memfree(text);
        return result;
    }

    int session_error() const
    {
        int code = LDAP_OTHER;
        ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &code);
        return code;
    }

    // Why the connection failed at `stage`, in an operator's words.
    [[noreturn]] void fail_session(const std::string& stage, const std::string& doing)
    {
        const int code = session_error();
        std::string reason;
        if (code == LDAP_SERVER_DOWN && errno == ERANGE)
            reason = target_.uri + " sent a message over " + std::to_string(max_message_bytes) + " bytes (or no LDAP) "
                     + doing + " " + stage;
        else if (code == LDAP_SERVER_DOWN)
            reason = "connection to " + target_.uri + " closed " + doing + " " + stage;
        else if (code == LDAP_DECODING_ERROR)
            reason = target_.uri + " sent a reply to " + stage + " that is not LDAP (undecodable)";
        else if (code == LDAP_TIMEOUT)
            reason = target_.uri + ": no reply to " + stage + within(limit_);
        else
            reason = target_.uri + ": " + stage + " failed: " + describe_code(code);
        const std::string detail = diagnostic_message();
        if (!detail.empty() && code != LDAP_TIMEOUT)
            reason += " (" + detail + ")";
        fail(reason);
    }

    int send(const std::string& stage, int rc)
    {
        progress_.enter(stage + " to " + target_.uri);
        if (rc != LDAP_SUCCESS)
            fail_session(stage, "before sending");
        return msgid_;
    }

    void handshake(const std::string& stage)
    {
        progress_.enter(stage);
        set_timeouts();
        const int rc = ldap_install_tls(ld_);
        if (rc == LDAP_SUCCESS)
            return;
        if (rc == LDAP_TIMEOUT || until_.passed())
            fail(target_.uri + ": no " + stage.substr(0, stage.find(" with ")) + within(limit_));
        const std::string detail = diagnostic_message();
        if (target_.scheme == "ldaps")
            name_certificate_rejection();
        else if (verify_peer_)
            name_starttls_certificate_rejection();
        fail(stage + " failed: " + describe_code(rc) + (detail.empty() ? "" : " (" + detail + ")"));
    }

    // libldap (on GnuTLS in Debian) reports a certificate it refused only as
    // "Connect error": a second handshake on our own TLS client, which
    // verifies the same way, names why ("certificate has expired",
    // "self-signed certificate", "hostname mismatch") and whose certificate.
    void name_certificate_rejection()
    {
        // Our first connection goes first: a server may serve one at a time.
        ldap_unbind_ext(ld_, nullptr, nullptr);
        ld_ = nullptr;
        probe_options where;
        where.host = target_.host;
        where.port = target_.port;
        where.tls = tls_mode::implicit;
        where.ca_file = options_.ca_file;
        try {
            line_channel second(until_);
            second.connect(where, target_.port);
        } catch (const check_failure& failure) {
            // "TLS certificate of HOST:PORT rejected: WHY (SUBJECT)", named by URI here.
            const std::string& reason = failure.result().reason();
            if (const auto verdict = reason.find(" rejected: "); verdict != std::string::npos)
                fail("TLS certificate of " + target_.uri + reason.substr(verdict));
        }
    }

    // After StartTLS there is no TLS client of ours to repeat the handshake
    // on (the server expects the LDAP exchange first): a second session that
    // accepts any certificate fetches the server's, and OpenSSL checks it
    // against the same trust anchors and the URI's host name.
    void name_starttls_certificate_rejection()
    {
        ldap_unbind_ext(ld_, nullptr, nullptr);
        ld_ = nullptr;
        ldap_session second(target_, options_, until_, limit_, progress_);
        second.verify_peer_ = false;
        try {
            second.open(true);
        } catch (const check_failure&) {
            return;
        }
        const x509_ptr cert = second.peer_certificate();
        if (!cert)
            return;
        const std::string why = certificate_rejection(cert.get(), {options_.ca_file, target_.host});
        if (!why.empty())
            fail("TLS certificate of " + target_.uri + " rejected: " + why);
    }

    using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

    x509_ptr peer_certificate() const
    {
        berval der{};
        if (ldap_get_option(ld_, LDAP_OPT_X_TLS_PEERCERT, &der) != LDAP_OPT_SUCCESS || der.bv_val == nullptr)
            return {nullptr, &X509_free};
        const auto* bytes = reinterpret_cast<const unsigned char*>(der.bv_val);
        x509_ptr cert(d2i_X509(nullptr, &bytes, static_cast<long>(der.bv_len)), &X509_free);
        ldap_memfree(der.bv_val);
        return cert;
    }

    // Checks the certificate libldap verified (against ca_file, and the
    // URI's host name) for its remaining validity.
    outcome certificate_verdict()
    {
        const x509_ptr cert = peer_certificate();
        if (!cert)
            return outcome::ok();
        return check_certificate_expiry(describe_certificate(cert.get()), options_.cert_warn_days);
    }

    // The complete answer to `msgid`, waiting no longer than the deadline.
    message_ptr await(int msgid, const std::string& stage)
    {
        for (;;) {
            if (until_.passed())
                fail(target_.uri + ": no reply to " + stage + within(limit_));
            timeval left = to_timeval(until_.remaining());
            LDAPMessage* answer = nullptr;
            // liblber says "message over the size limit" only as ERANGE.
            errno = 0;
            const int rc = ldap_result(ld_, msgid, LDAP_MSG_ALL, &left, &answer);
            if (rc > 0 && answer != nullptr)
                return message_ptr(answer);
            if (rc < 0)
                fail_session(stage, "while awaiting the reply to");
            // 0: timed out; go round to check the deadline.
        }
    }

    // Awaits `msgid` and reads its result code, diagnostic and, from the
    // entry returned, the values of `attribute`.
    ldap_reply finish(int msgid, const std::string& stage, const char* attribute)
    {
        const message_ptr answer = await(msgid, stage);
        ldap_reply reply;
        bool have_result = false;
        for (LDAPMessage* message = ldap_first_message(ld_, answer.get()); message != nullptr;
             message = ldap_next_message(ld_, message)) {
            const int type = ldap_msgtype(message);
            if (type == LDAP_RES_SEARCH_ENTRY) {
                reply.entry_found = true;
                if (attribute != nullptr)
                    read_values(message, attribute, reply.values);
            } else if (type != LDAP_RES_SEARCH_REFERENCE && type != LDAP_RES_INTERMEDIATE) {
                int code = LDAP_OTHER;
                char* text = nullptr;
                if (ldap_parse_result(ld_, message, &code, nullptr, &text, nullptr, nullptr, 0) != LDAP_SUCCESS)
                    fail(target_.uri + " sent a malformed result for " + stage);
                reply.code = code;
                if (text != nullptr) {
                    reply.diagnostic = printable_excerpt(text);
                    ldap_memfree(text);
                }
                have_result = true;
            }
        }
        if (!have_result)
            fail(target_.uri + " sent no result for " + stage);
        return reply;
    }

    void read_values(LDAPMessage* entry, const char* attribute, std::vector<std::string>& out)
    {
        berval** values = ldap_get_values_len(ld_, entry, attribute);
        if (values == nullptr)
            return;
        for (berval** value = values; *value != nullptr; ++value)
            out.emplace_back((*value)->bv_val, (*value)->bv_len);
        ldap_value_free_len(values);
    }

    ldap_target target_;
    const ldap_options& options_;
    deadline until_;
    std::chrono::milliseconds limit_;
    check_progress& progress_;
    LDAP* ld_ = nullptr;
    int msgid_ = 0;
    bool verify_peer_ = true; // false only to fetch a certificate already refused
};

// A CA file that cannot be read is the operator's to fix (6), found before
// any server is contacted.
void require_readable_ca_file(const ldap_options& options)
{
    if (!options.ca_file.empty() && ::access(options.ca_file.c_str(), R_OK) != 0)
        throw check_failure(
            outcome::misconfigured("cannot read CA file '" + options.ca_file + "': " + std::strerror(errno)));
}

std::string generalized_time_now()
{
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y%m%d%H%M%SZ", &utc);
    return text;
}

// The newest time among a contextCSN's values (one per serverID).
std::optional<std::chrono::system_clock::time_point> newest_csn(const std::vector<std::string>& values)
{
    std::optional<std::chrono::system_clock::time_point> newest;
    for (const auto& value : values) {
        const auto at = csn_time(value);
        if (at && (!newest || *at > *newest))
            newest = at;
    }
    return newest;
}

std::string seconds_text(std::chrono::system_clock::duration lag)
{
    std::ostringstream text;
    text.setf(std::ios::fixed);
    text.precision(1);
    text << std::chrono::duration<double>(lag).count() << " s";
    return text.str();
}

class ldap_check {
public:
    ldap_check(const ldap_options& options, std::shared_ptr<const credentials> identity, const deadline& until,
               check_progress& progress)
        : options_(options), identity_(std::move(identity)), until_(until), progress_(progress)
    {
    }

    outcome run()
    {
        ldap_session local(parse_uri(options_.uri, "--uri"), options_, until_, options_.time_limit, progress_);
        outcome verdict = local.open(options_.starttls);
        bind(local, false);

        const std::string base = options_.suffix;
        const ldap_reply found = local.search_base(
            base, options_.provider_uri.empty() ? nullptr : "contextCSN",
            base.empty() ? std::string("base search of the rootDSE") : "base search of " + quote_dn(base));
        if (found.code == LDAP_NO_SUCH_OBJECT)
            fail("suffix " + quote_dn(base) + " does not exist on " + options_.uri + " (noSuchObject)");
        if (found.code != LDAP_SUCCESS)
            fail((base.empty() ? std::string("rootDSE") : "suffix " + quote_dn(base)) + " search on " + options_.uri
                 + " failed: " + describe_reply(found));

        if (!options_.probe_entry.empty())
            check_probe_entry(local);
        if (!options_.write_probe_attribute.empty())
            write_probe(local);
        if (!options_.db_dir.empty()) {
            progress_.enter("MDB usage of " + options_.db_dir.string());
            verdict = outcome::worse(
                verdict, check_mdb_usage(options_.db_dir, options_.maxsize_warn_percent, options_.maxsize_bytes));
        }
        if (!options_.provider_uri.empty())
            verdict = outcome::worse(verdict, replication(found.values));
        return verdict;
    }

private:
    [[noreturn]] static void fail(const std::string& reason) { throw check_failure(outcome::failed(reason)); }

    void bind(ldap_session& session, bool provider)
    {
        if (options_.sasl_external && (!provider || session.uri().rfind("ldapi:", 0) == 0))
            session.sasl_external_bind();
        else if (identity_ != nullptr)
            session.simple_bind(*identity_);
    }

    void check_probe_entry(ldap_session& local)
    {
        const ldap_reply entry
            = local.search_base(options_.probe_entry, nullptr,
                                "base search of probe entry " + quote_dn(options_.probe_entry));
        if (entry.code == LDAP_NO_SUCH_OBJECT)
            fail("probe entry " + quote_dn(options_.probe_entry) + " does not exist on " + options_.uri
                 + " (noSuchObject)");
        if (entry.code != LDAP_SUCCESS || !entry.entry_found)
            fail("probe entry " + quote_dn(options_.probe_entry) + " not readable on " + options_.uri + ": "
                 + describe_reply(entry));
    }

    void write_probe(ldap_session& local)
    {
        const ldap_reply written
            = local.modify_replace(options_.probe_entry, options_.write_probe_attribute, generalized_time_now(),
                                   "write probe (modify of " + options_.write_probe_attribute + ")");
        if (written.code == LDAP_SUCCESS)
            return;
        std::string reason = "write probe on " + options_.uri + ": modify of " + options_.write_probe_attribute
                             + " of " + quote_dn(options_.probe_entry) + " failed: " + describe_reply(written);
        // What back-mdb answers when its map is full; the operator's next
        // question is why, so say what usually causes it.
        if (written.code == LDAP_OTHER)
            reason += " (an MDB database at its maxsize fails writes this way)";
        fail(reason);
    }

    // Lag of this server behind the provider: the newest contextCSN there
    // minus the newest here.
    outcome replication(const std::vector<std::string>& local_csns)
    {
        std::vector<std::string> provider_csns;
        // Half of what is left: a frozen provider must not use up the time
        // this server's own verdict needs.
        const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(until_.remaining() / 2);
        try {
            ldap_session provider(parse_uri(options_.provider_uri, "--provider-uri"), options_,
                                  deadline::after(budget), budget, progress_);
            provider.open(options_.provider_starttls);
            bind(provider, true);
            const ldap_reply found
                = provider.search_base(options_.suffix, "contextCSN", "contextCSN search on the provider");
            if (found.code != LDAP_SUCCESS)
                return outcome::degraded("replication lag unknown: contextCSN search on provider "
                                         + options_.provider_uri + " failed: " + describe_reply(found));
            provider_csns = found.values;
        } catch (const check_failure& failure) {
            if (failure.result().code() == ocf_code::err_args)
                throw;
            // The provider being down is not this server's fault: failing
            // here would make Pacemaker restart a healthy consumer.
            return outcome::degraded("replication lag unknown: provider unreachable: " + failure.result().reason());
        }
        const auto there = newest_csn(provider_csns);
        if (!there)
            return outcome::degraded("replication lag unknown: provider " + options_.provider_uri
                                     + " has no contextCSN for " + quote_dn(options_.suffix)
                                     + " (is syncprov loaded there?)");
        const auto here = newest_csn(local_csns);
        if (!here)
            fail("no contextCSN for " + quote_dn(options_.suffix) + " on " + options_.uri
                 + ": nothing replicated from provider " + options_.provider_uri + " yet");
        const auto lag = *there > *here ? *there - *here : std::chrono::system_clock::duration::zero();
        const std::string measured = "replication lag of " + options_.uri + " behind " + options_.provider_uri + " is "
                                     + seconds_text(lag);
        if (options_.max_replication_lag.count() > 0 && lag > options_.max_replication_lag)
            fail(measured + ", over the limit of " + std::to_string(options_.max_replication_lag.count()) + " s");
        if (options_.warn_replication_lag.count() > 0 && lag > options_.warn_replication_lag)
            return outcome::degraded(measured + ", over the warning level of "
                                     + std::to_string(options_.warn_replication_lag.count()) + " s");
        return outcome::ok();
    }

    const ldap_options& options_;
    std::shared_ptr<const credentials> identity_;
    deadline until_;
    check_progress& progress_;
};

void validate(const ldap_options& options)
{
    const auto usage = [](const std::string& text) { return check_failure(outcome(ocf_code::err_args, text)); };
    const ldap_target local = parse_uri(options.uri, "--uri");
    if (options.starttls && local.scheme != "ldap")
        throw usage("--starttls needs an ldap:// URI");
    if (const auto conflict = ldap_options_conflict(options))
        throw usage(*conflict);
    if (!options.provider_uri.empty()) {
        const ldap_target provider = parse_uri(options.provider_uri, "--provider-uri");
        if (options.provider_starttls && provider.scheme != "ldap")
            throw usage("--provider-starttls needs an ldap:// provider URI");
        if (options.suffix.empty())
            throw usage("--provider-uri needs --suffix (whose contextCSN is compared)");
    }
}

} // namespace

std::optional<std::chrono::system_clock::time_point> csn_time(std::string_view csn)
{
    // YYYYmmddHHMMSS.uuuuuuZ: 14 digits, '.', 6 digits, 'Z'.
    if (csn.size() < 22 || csn[14] != '.' || csn[21] != 'Z')
        return std::nullopt;
    const auto digits = [&](std::size_t from, std::size_t count) -> std::optional<int> {
        int value = 0;
        for (std::size_t i = from; i < from + count; ++i) {
            if (csn[i] < '0' || csn[i] > '9')
                return std::nullopt;
            value = value * 10 + (csn[i] - '0');
        }
        return value;
    };
    const auto year = digits(0, 4);
    const auto month = digits(4, 2);
    const auto day = digits(6, 2);
    const auto hour = digits(8, 2);
    const auto minute = digits(10, 2);
    const auto second = digits(12, 2);
    const auto micros = digits(15, 6);
    if (!year || !month || !day || !hour || !minute || !second || !micros)
        return std::nullopt;
    const std::chrono::year_month_day date{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                                           std::chrono::day(static_cast<unsigned>(*day))};
    // system_clock counts nanoseconds in 64 bits: about 1678 to 2262. A CSN
    // outside LDAP's own lifetime (a damaged or forged contextCSN) is no
    // time, rather than an overflow in the lag arithmetic.
    if (*year < 1970 || *year > 2200)
        return std::nullopt;
    if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60)
        return std::nullopt;
    return std::chrono::sys_days(date) + std::chrono::hours(*hour) + std::chrono::minutes(*minute)
           + std::chrono::seconds(*second) + std::chrono::microseconds(*micros);
}

outcome check_ldap(const ldap_options& options, const deadline& until)
{
    try {
        validate(options);
        // Read before connecting: an unsafe file is 6 whatever the server does.
        std::shared_ptr<const credentials> identity;
        if (!options.bind_dn.empty())
            identity = std::make_shared<const credentials>(
                read_password_file(options.bind_password_file, options.bind_dn));
        require_readable_ca_file(options);

        auto progress = std::make_shared<check_progress>();
        progress->stage = "connect to " + options.uri;
        const deadline inner = until.shortened_by(inner_margin(options.time_limit));
        // The worker owns copies of everything it uses, so that it may be
        // left behind (detached) when libldap blocks past the deadline.
        std::thread worker([progress, identity, inner, copy = options] {
            outcome result;
            try {
                result = ldap_check(copy, identity, inner, *progress).run();
            } catch (const check_failure& failure) {
                result = failure.result();
            } catch (const std::exception& error) {
                result = outcome::failed(error.what());
            }
            if (identity != nullptr)
                result = outcome(result.code(), identity->redact(result.reason()));
            const std::lock_guard lock(progress->mutex);
            progress->result = std::move(result);
            progress->finished.notify_all();
        });
        std::unique_lock lock(progress->mutex);
        if (!progress->finished.wait_until(lock, until.at(), [&] { return progress->result.has_value(); })) {
            const std::string stage = progress->stage;
            lock.unlock();
            worker.detach();
            return outcome::failed(stage + ": no answer" + within(options.time_limit));
        }
        outcome result = std::move(*progress->result);
        lock.unlock();
        worker.join();
        return result;
    } catch (const check_failure& failure) {
        return failure.result();
    }
}

} // namespace msg
