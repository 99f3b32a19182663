#include "msg/nntp.hpp"

#include "msg/credentials.hpp"
#include "msg/dialogue.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/probe_message.hpp"
#include "msg/reply_text.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace msg {

namespace {

// RFC 3977 3.1 caps status lines at 512 octets and RFC 5322 article lines
// at 998; servers overshoot both now and then, so allow more, but never a
// line without end.
constexpr std::size_t max_line = 4096;
// RFC 6761: no real domain can carry it, so no real article is ever mistaken
// for a probe's, and readers of the probe group can tell what they see.
constexpr const char* probe_domain = "msg-probe.invalid";

bool is_digits(std::string_view text)
{
    return !text.empty()
           && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool starts_with_nocase(std::string_view text, std::string_view prefix)
{
    return text.size() >= prefix.size() && upper_ascii(text.substr(0, prefix.size())) == upper_ascii(prefix);
}

// One status line: "211 3 1 3 local.test" -> {211, "211 3 1 3 local.test"}.
struct nntp_reply {
    int code = 0;
    std::string line;

    // The words after the code.
    std::vector<std::string> arguments() const
    {
        std::vector<std::string> words = split_words(line);
        if (!words.empty())
            words.erase(words.begin());
        return words;
    }
};

// One NNTP session over a connected channel: status lines, dot-stuffed
// multi-line replies, capabilities. Every failure is a check_failure.
class session {
public:
    session(line_channel& channel, const credentials* login) : channel_(channel), login_(login) {}

    // Reads the greeting: 200 (posting allowed) or 201 (not allowed).
    void greeting()
    {
        const nntp_reply hello = read_status("NNTP greeting");
        if (hello.code == 200 || hello.code == 201)
            return;
        // 400: the service is unavailable (INN says so while throttled, with
        // the throttle's reason as text); 502: not for this client.
        if (hello.code == 400 || hello.code == 502)
            fail("NNTP server " + channel_.peer() + " refuses service: " + excerpt(hello.line));
        fail("unexpected NNTP greeting: " + excerpt(hello.line));
    }

    // Sends `line` and reads the status line; `verb` alone names the command
    // in reasons and logs, so arguments (the password) never reach either.
    nntp_reply command(const std::string& line, const std::string& verb)
    {
        channel_.write_line(line, verb);
        nntp_reply reply = read_status("reply to " + verb);
        std::ostringstream note;
        note << "NNTP " << channel_.peer() << ": " << verb << " -> " << reply.code;
        log_debug(note.str());
        return reply;
    }

    // The lines of a multi-line block up to its "." (RFC 3977 3.1.1), with
    // the dot-stuffing undone; throws 1 past nntp_max_reply_lines or
    // nntp_max_reply_bytes, or when the "." never comes before the deadline.
    std::vector<std::string> read_block(const std::string& what)
    {
        std::vector<std::string> lines;
        std::size_t bytes = 0;
        for (;;) {
            std::string line = channel_.read_line(max_line, "complete " + what);
            if (line == ".")
                return lines;
            if (!line.empty() && line.front() == '.')
                line.erase(0, 1);
            bytes += line.size() + 2;
            if (lines.size() == nntp_max_reply_lines || bytes > nntp_max_reply_bytes) {
                std::ostringstream reason;
                reason << what << " longer than " << nntp_max_reply_lines << " lines or " << nntp_max_reply_bytes
                       << " bytes without its final \".\"";
                fail(reason.str());
            }
            lines.push_back(std::move(line));
        }
    }

    // Asks CAPABILITIES afresh: RFC 3977 5.2, after MODE READER, STARTTLS
    // (RFC 4642 2.2.2) and AUTHINFO (RFC 4643 2.2) all earlier answers are void.
    void refresh_capabilities()
    {
        capabilities_.clear();
        const nntp_reply reply = command("CAPABILITIES", "CAPABILITIES");
        // A server that predates RFC 3977 does not know the command; it
        // still speaks NNTP, and what it offers is learnt by trying.
        capabilities_known_ = reply.code != 500 && reply.code != 501;
        if (!capabilities_known_)
            return;
        expect(reply, 101, "CAPABILITIES");
        for (const std::string& line : read_block("reply to CAPABILITIES")) {
            std::vector<std::string> words = split_words(line);
            if (words.empty())
                continue;
            std::vector<std::string>& arguments = capabilities_[upper_ascii(words.front())];
            for (auto word = words.begin() + 1; word != words.end(); ++word)
                arguments.push_back(upper_ascii(*word));
        }
    }

    bool capabilities_known() const { return capabilities_known_; }

    bool offers(const std::string& capability) const { return capabilities_.count(capability) != 0; }

    bool offers(const std::string& capability, const std::string& argument) const
    {
        const auto found = capabilities_.find(capability);
        return found != capabilities_.end()
               && std::find(found->second.begin(), found->second.end(), argument) != found->second.end();
    }

    // Throws 1 unless `reply` has code `wanted`; `step` names what was refused.
    void expect(const nntp_reply& reply, int wanted, const std::string& step) const
    {
        if (reply.code == wanted)
            return;
        if (reply.code >= 400)
            fail(step + " rejected: " + excerpt(reply.line));
        fail("unexpected reply to " + step + ": " + excerpt(reply.line));
    }

    // Server text for a reason: the password masked, then made printable and short.
    std::string excerpt(std::string_view text) const
    {
        return printable_excerpt(login_ != nullptr ? login_->redact(text) : std::string(text));
    }

    [[noreturn]] static void fail(const std::string& reason) { throw check_failure(outcome::failed(reason)); }

private:
    nntp_reply read_status(const std::string& what)
    {
        const std::string line = channel_.read_line(max_line, what);
        // RFC 3977 3.2: three digits, then a space or the end of the line.
        const bool well_formed = line.size() >= 3 && is_digits(std::string_view(line).substr(0, 3))
                                 && (line.size() == 3 || line[3] == ' ');
        if (!well_formed)
            fail("malformed " + what + ": " + excerpt(line));
        return {std::stoi(line.substr(0, 3)), line};
    }

    line_channel& channel_;
    const credentials* login_;
    bool capabilities_known_ = false;
    std::map<std::string, std::vector<std::string>> capabilities_;
};

// INN's innd answers feeds itself and hands readers to nnrpd only on MODE
// READER; until then DATE, GROUP and POST get 401 MODE-READER (RFC 3977 5.3).
// Asked also when MODE-READER is not listed: a paused innd drops it from
// CAPABILITIES, and its answer to MODE READER (403 and the pause reason)
// says more than the 502 every reader command would get.
void switch_to_reader(session& nntp)
{
    if (nntp.capabilities_known() && nntp.offers("READER"))
        return;
    const nntp_reply reply = nntp.command("MODE READER", "MODE READER");
    // Without CAPABILITIES, a server that has no modes may not know the command either.
    if (!nntp.capabilities_known() && (reply.code == 500 || reply.code == 501))
        return;
    // 200/201: reader ready, posting allowed or not; INN answers 403 with the
    // reason while paused, 502 when readers are not allowed.
    if (reply.code != 200 && reply.code != 201)
        nntp.expect(reply, 200, "MODE READER");
    nntp.refresh_capabilities();
}

void start_tls(session& nntp, line_channel& channel, const probe_options& where)
{
    if (nntp.capabilities_known() && !nntp.offers("STARTTLS"))
        session::fail("STARTTLS not offered by " + channel.peer());
    nntp.expect(nntp.command("STARTTLS", "STARTTLS"), 382, "STARTTLS");
    channel.start_tls(verification_for(where));
    nntp.refresh_capabilities();
}

void log_in(session& nntp, const line_channel& channel, const credentials& login)
{
    const bool secured = channel.peer_certificate().has_value();
    const std::string hint = secured ? std::string() : std::string(" over plaintext: use --starttls or --tls");
    // RFC 4643 2.1: the USER argument says AUTHINFO USER/PASS is available
    // now; INN withholds it without TLS, and sending the password anyway
    // would hand it to anyone listening.
    if (nntp.capabilities_known() && !nntp.offers("AUTHINFO", "USER"))
        session::fail("NNTP server " + channel.peer() + " does not offer AUTHINFO USER" + hint);
    const std::string who = printable_excerpt(login.username(), 64);
    const nntp_reply user = nntp.command("AUTHINFO USER " + login.username(), "AUTHINFO USER");
    if (user.code == 381)
        nntp.expect(nntp.command("AUTHINFO PASS " + login.password(), "AUTHINFO PASS"), 281, "AUTHINFO PASS for " + who);
    else
        nntp.expect(user, 281, "AUTHINFO USER " + who);
    if (nntp.capabilities_known())
        nntp.refresh_capabilities();
}

void select_group(session& nntp, const std::string& group)
{
    const nntp_reply reply = nntp.command("GROUP " + group, "GROUP");
    nntp.expect(reply, 211, "GROUP " + printable_excerpt(group, 64));
    // RFC 3977 6.1.1: "211 number low high group".
    const std::vector<std::string> words = reply.arguments();
    if (words.size() < 4 || !is_digits(words[0]) || !is_digits(words[1]) || !is_digits(words[2]))
        session::fail("malformed reply to GROUP: " + nntp.excerpt(reply.line));
}

void check_date(session& nntp)
{
    const nntp_reply reply = nntp.command("DATE", "DATE");
    nntp.expect(reply, 111, "DATE");
    // RFC 3977 7.1: "111 yyyymmddhhmmss", UTC.
    const std::vector<std::string> words = reply.arguments();
    if (words.empty() || words[0].size() != 14 || !is_digits(words[0]))
        session::fail("malformed reply to DATE: " + nntp.excerpt(reply.line));
}

// The probe article, line by line (CR LF is added on the wire).
std::vector<std::string> probe_article(const std::string& group, const std::string& token,
                                       const std::string& message_id)
{
    return {
        std::string("From: msg-probe <msg-probe@") + probe_domain + ">",
        "Newsgroups: " + group,
        "Subject: msg-probe news store check " + token,
        "Message-ID: " + message_id,
        "Date: " + rfc5322_date_now(),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Posted by msg-probe nntp --round-trip to prove that the server takes,",
        "stores and returns articles. Expires with the group like any other.",
        "Token: " + token,
    };
}

// POST a probe article to `group`, then read it back by its Message-ID.
void round_trip(session& nntp, line_channel& channel, const std::string& group)
{
    const std::string token = random_token();
    const std::string message_id = "<msg-probe." + token + "@" + probe_domain + ">";
    const std::string name = printable_excerpt(group, 64);

    // 340: send the article; 440: posting not permitted (INN: also while paused).
    nntp.expect(nntp.command("POST", "POST"), 340, "POST to " + name);
    for (const std::string& line : probe_article(group, token, message_id))
        channel.write_line(!line.empty() && line.front() == '.' ? "." + line : line, "probe article");
    const nntp_reply posted = nntp.command(".", "end of probe article");
    nntp.expect(posted, 240, "probe article " + token + " to " + name);

    // The article proper, not just its history entry: the storage manager
    // must hand it back, headers and body.
    const nntp_reply found = nntp.command("ARTICLE " + message_id, "ARTICLE");
    if (found.code == 430)
        session::fail("probe article " + token + " not found after the server accepted it: "
                      + nntp.excerpt(found.line));
    nntp.expect(found, 220, "ARTICLE " + token);
    const std::vector<std::string> article = nntp.read_block("article " + token);
    const auto header_end = std::find(article.begin(), article.end(), std::string());
    const bool has_id = std::any_of(article.begin(), header_end, [&](const std::string& line) {
        return starts_with_nocase(line, "Message-ID:") && line.find(message_id) != std::string::npos;
    });
    const bool has_body = std::find(header_end, article.end(), "Token: " + token) != article.end();
    if (!has_id || !has_body)
        session::fail("probe article " + token + " read back from " + name + " without its "
                      + (has_id ? "body" : "Message-ID header"));
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const nntp_options& options, const credentials* login)
{
    const probe_options& where = options.where;
    session nntp(channel, login);
    nntp.greeting();
    nntp.refresh_capabilities();
    switch_to_reader(nntp);

    if (where.tls == tls_mode::starttls)
        start_tls(nntp, channel, where);
    const outcome certificate = certificate_outcome(channel, where.cert_warn_days);

    if (login != nullptr)
        log_in(nntp, channel, *login);
    if (!options.group.empty())
        select_group(nntp, options.group);
    check_date(nntp);
    if (options.round_trip)
        round_trip(nntp, channel, options.group);
    nntp.expect(nntp.command("QUIT", "QUIT"), 205, "QUIT");
    channel.close();
    return certificate;
}

} // namespace

outcome check_nntp(const nntp_options& options, const deadline& until)
{
    try {
        // Bad options are the caller's bug (2), found before any traffic.
        require_single_line(options.group, "--group");
        if (options.group.find_first_of(" \t") != std::string::npos)
            throw check_failure(outcome(ocf_code::err_args, "--group must be one newsgroup name"));
        if (options.round_trip && options.group.empty())
            throw check_failure(outcome(ocf_code::err_args, "--round-trip needs --group"));
        if (options.where.tls != tls_mode::none)
            verification_for(options.where);
    } catch (const check_failure& failure) {
        return failure.result();
    }
    return run_login_dialogue(options.where, nntp_default_port(options.where.tls), until, "QUIT", options.credentials_file,
                              [&options](line_channel& channel, const credentials* login) {
                                  return converse(channel, options, login);
                              });
}

std::uint16_t nntp_default_port(tls_mode tls)
{
    return tls == tls_mode::implicit ? 563 : 119;
}

} // namespace msg
