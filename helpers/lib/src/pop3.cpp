#include "msg/pop3.hpp"

#include "msg/credentials.hpp"
#include "msg/dialogue.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/reply_text.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <string>
#include <vector>

namespace msg {

namespace {

// RFC 1939 caps replies at 512 octets; RFC 2449 lets CAPA lines run longer
// (SASL mechanism lists), so allow more, but never an endless line.
constexpr std::size_t max_line = 4096;
constexpr std::size_t max_capability_lines = 128;

bool is_digits(std::string_view text)
{
    return !text.empty()
           && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// One POP3 session over a connected channel; every failure is a check_failure.
class session {
public:
    session(line_channel& channel, const credentials* login) : channel_(channel), login_(login) {}

    void greeting()
    {
        const std::string hello = channel_.read_line(max_line, "POP3 greeting");
        const std::string status = status_of(hello);
        if (status == "-ERR")
            fail("POP3 session rejected: " + excerpt(hello));
        if (status != "+OK")
            fail("malformed POP3 greeting: " + excerpt(hello));
    }

    // Sends `line` and returns the status line of the reply; `verb` alone
    // names the command in reasons and logs, so arguments never reach either.
    std::string command(const std::string& line, const std::string& verb)
    {
        channel_.write_line(line, verb);
        std::string reply = channel_.read_line(max_line, "reply to " + verb);
        log_debug("POP3 " + channel_.peer() + ": " + verb + " -> " + status_of(reply));
        return reply;
    }

    // Asks CAPA afresh (after STLS, RFC 2595 4, all earlier answers are void).
    void refresh_capabilities()
    {
        capabilities_.clear();
        const std::string reply = command("CAPA", "CAPA");
        // RFC 2449 5: a server that predates CAPA answers -ERR; it still speaks POP3.
        capa_supported_ = status_of(reply) != "-ERR";
        if (!capa_supported_)
            return;
        expect_ok(reply, "CAPA");
        for (;;) {
            std::string line = channel_.read_line(max_line, "complete reply to CAPA");
            if (line == ".")
                return;
            // Byte-stuffing: a line that starts with "." has another put in front.
            if (!line.empty() && line.front() == '.')
                line.erase(0, 1);
            if (capabilities_.size() == max_capability_lines) {
                std::ostringstream reason;
                reason << "reply to CAPA longer than " << max_capability_lines << " lines";
                fail(reason.str());
            }
            const std::vector<std::string> words = split_words(line);
            if (!words.empty())
                capabilities_.push_back(upper_ascii(words.front()));
        }
    }

    bool capa_supported() const { return capa_supported_; }

    bool offers(const std::string& capability) const
    {
        return std::find(capabilities_.begin(), capabilities_.end(), capability) != capabilities_.end();
    }

    // Throws 1 unless `reply` is +OK; `step` names what was refused.
    void expect_ok(const std::string& reply, const std::string& step) const
    {
        const std::string status = status_of(reply);
        if (status == "+OK")
            return;
        if (status == "-ERR")
            fail(step + " rejected: " + excerpt(reply));
        fail("malformed reply to " + step + ": " + excerpt(reply));
    }

    // Server text for a reason: the password masked, then made printable and short.
    std::string excerpt(std::string_view text) const
    {
        return printable_excerpt(login_ != nullptr ? login_->redact(text) : std::string(text));
    }

    [[noreturn]] static void fail(const std::string& reason) { throw check_failure(outcome::failed(reason)); }

private:
    // "+OK" or "-ERR" (any case, alone or before a space); empty otherwise.
    static std::string status_of(std::string_view reply)
    {
        const std::string word = upper_ascii(reply.substr(0, reply.find(' ')));
        return word == "+OK" || word == "-ERR" ? word : std::string();
    }

    line_channel& channel_;
    const credentials* login_;
    bool capa_supported_ = false;
    std::vector<std::string> capabilities_;
};

void log_in(session& pop3, const line_channel& channel, const credentials& login)
{
    const bool secured = channel.peer_certificate().has_value();
    // RFC 2449 6.8: a server that lists capabilities without USER will not
    // take USER/PASS here (Dovecot: plaintext auth disabled), and sending
    // the password anyway would hand it to anyone listening.
    if (pop3.capa_supported() && !pop3.offers("USER")) {
        session::fail("POP3 server " + channel.peer() + " does not offer USER"
                      + (secured ? std::string() : std::string(" over plaintext: use --starttls or --tls")));
    }
    const std::string who = printable_excerpt(login.username(), 64);
    pop3.expect_ok(pop3.command("USER " + login.username(), "USER"), "USER " + who);
    pop3.expect_ok(pop3.command("PASS " + login.password(), "PASS"), "PASS for " + who);
    const std::string stat = pop3.command("STAT", "STAT");
    pop3.expect_ok(stat, "STAT");
    // RFC 1939 5: "+OK nn mm", message count and size of the maildrop.
    const std::vector<std::string> words = split_words(stat);
    if (words.size() < 3 || !is_digits(words[1]) || !is_digits(words[2]))
        session::fail("malformed reply to STAT: " + pop3.excerpt(stat));
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const pop3_options& options, const credentials* login)
{
    const probe_options& where = options.where;
    session pop3(channel, login);
    pop3.greeting();
    pop3.refresh_capabilities();

    if (where.tls == tls_mode::starttls) {
        if (!pop3.offers("STLS"))
            session::fail("STLS not offered by " + channel.peer());
        pop3.expect_ok(pop3.command("STLS", "STLS"), "STLS");
        channel.start_tls(verification_for(where));
        pop3.refresh_capabilities();
    }
    const outcome certificate = certificate_outcome(channel, where.cert_warn_days);

    if (login != nullptr)
        log_in(pop3, channel, *login);
    pop3.expect_ok(pop3.command("QUIT", "QUIT"), "QUIT");
    channel.close();
    return certificate;
}

} // namespace

outcome check_pop3(const pop3_options& options, const deadline& until)
{
    try {
        if (options.where.tls != tls_mode::none)
            verification_for(options.where);
    } catch (const check_failure& failure) {
        return failure.result();
    }
    return run_login_dialogue(options.where, pop3_default_port(options.where.tls), until, "QUIT", options.credentials_file,
                              [&options](line_channel& channel, const credentials* login) {
                                  return converse(channel, options, login);
                              });
}

std::uint16_t pop3_default_port(tls_mode tls)
{
    return tls == tls_mode::implicit ? 995 : 110;
}

} // namespace msg
