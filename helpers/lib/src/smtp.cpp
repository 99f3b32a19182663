#include "msg/smtp.hpp"

#include "msg/dialogue.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/reply_text.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>

namespace msg {

namespace {

// RFC 5321 caps reply lines at 512 bytes; real servers overshoot with long
// greetings, so allow more, but never a server that streams without newlines.
constexpr std::size_t max_reply_line = 2048;
// EHLO replies are the longest; a few dozen lines is already generous.
constexpr std::size_t max_reply_lines = 128;

std::string this_host_name()
{
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
        return "localhost";
    return name;
}

// "<a@b>" as given, else wrapped: both spellings appear in configurations.
std::string as_path(const std::string& address)
{
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
        return address;
    return "<" + address + ">";
}

// One dialogue's reply handling, so every step reports the same way.
class dialogue {
public:
    dialogue(line_channel& channel, std::string protocol) : channel_(channel), protocol_(std::move(protocol)) {}

    smtp_reply read_reply(const std::string& what)
    {
        smtp_reply reply;
        for (;;) {
            const std::string line
                = channel_.read_line(max_reply_line, reply.lines.empty() ? what : "complete " + what);
            const bool well_formed = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0]))
                                     && std::isdigit(static_cast<unsigned char>(line[1]))
                                     && std::isdigit(static_cast<unsigned char>(line[2]))
                                     && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
            if (!well_formed)
                throw check_failure(outcome::failed("malformed " + what + ": " + printable_excerpt(line)));
            reply.code = std::stoi(line.substr(0, 3));
            reply.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
            if (line.size() == 3 || line[3] == ' ')
                return reply;
            if (reply.lines.size() >= max_reply_lines) {
                std::ostringstream reason;
                reason << what << " longer than " << max_reply_lines << " lines";
                throw check_failure(outcome::failed(reason.str()));
            }
        }
    }

    // Sends `line`; `verb` alone names it in reasons and logs, so arguments
    // (addresses today, credentials one day) never reach either.
    smtp_reply command(const std::string& line, const std::string& verb)
    {
        channel_.write_line(line, verb);
        smtp_reply reply = read_reply("reply to " + verb);
        std::ostringstream note;
        note << protocol_ << ' ' << channel_.peer() << ": " << verb << " -> " << reply.code;
        log_debug(note.str());
        return reply;
    }

    // Throws 1 unless first <= reply.code <= last; `step` names what was refused.
    static void expect(const smtp_reply& reply, int first, int last, const std::string& step)
    {
        if (reply.code >= first && reply.code <= last)
            return;
        const std::string text = printable_excerpt(reply.text());
        if (reply.code >= 400)
            throw check_failure(outcome::failed(step + " rejected: " + text));
        throw check_failure(outcome::failed("unexpected reply to " + step + ": " + text));
    }

private:
    line_channel& channel_;
    std::string protocol_;
};

std::string offered_list(const std::vector<smtp_extension>& offered)
{
    std::string list;
    for (const auto& extension : offered)
        list += (list.empty() ? "" : " ") + extension.keyword;
    return list.empty() ? "none" : list;
}

std::uint16_t default_port(const smtp_options& options)
{
    if (options.lmtp)
        return 24;
    return options.where.tls == tls_mode::implicit ? 465 : 25;
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const smtp_options& options)
{
    const std::string protocol = options.lmtp ? "LMTP" : "SMTP";
    const std::string hello = options.lmtp ? "LHLO" : "EHLO";
    const probe_options& where = options.where;
    dialogue session(channel, protocol);
    const std::string hello_line = hello + " " + (options.helo_name.empty() ? this_host_name() : options.helo_name);

    dialogue::expect(session.read_reply(protocol + " banner"), 220, 220, protocol + " session");
    smtp_reply greeting = session.command(hello_line, hello);
    dialogue::expect(greeting, 250, 250, hello);

    if (where.tls == tls_mode::starttls) {
        if (!offers_extension(parse_extensions(greeting), "STARTTLS"))
            throw check_failure(outcome::failed("STARTTLS not offered by " + channel.peer()));
        dialogue::expect(session.command("STARTTLS", "STARTTLS"), 220, 220, "STARTTLS");
        channel.start_tls(verification_for(where));
        // RFC 3207: everything learnt before TLS is void, extensions included.
        greeting = session.command(hello_line, hello);
        dialogue::expect(greeting, 250, 250, hello);
    }
    const outcome certificate = certificate_outcome(channel, where.cert_warn_days);

    const std::vector<smtp_extension> offered = parse_extensions(greeting);
    for (const auto& required : options.required_extensions) {
        if (!offers_extension(offered, required))
            throw check_failure(outcome::failed("required extension " + printable_excerpt(required)
                                                + " not offered by " + channel.peer() + " (offers: "
                                                + printable_excerpt(offered_list(offered)) + ")"));
    }

    if (options.transaction) {
        // Up to RCPT only: the server commits to taking the mail (queue
        // space, recipient) without any mail being sent; RSET ends it.
        dialogue::expect(session.command("MAIL FROM:" + as_path(options.mail_from), "MAIL FROM"), 250, 250,
                         "MAIL FROM");
        dialogue::expect(session.command("RCPT TO:" + as_path(options.rcpt_to), "RCPT TO"), 250, 251,
                         "RCPT TO");
        dialogue::expect(session.command("RSET", "RSET"), 250, 250, "RSET");
    }

    dialogue::expect(session.command("NOOP", "NOOP"), 250, 250, "NOOP");
    dialogue::expect(session.command("QUIT", "QUIT"), 221, 221, "QUIT");
    channel.close();
    return certificate;
}

} // namespace

std::string smtp_reply::text() const
{
    std::ostringstream out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const bool last = i + 1 == lines.size();
        out << (i == 0 ? "" : " ") << code << (last ? ' ' : '-') << lines[i];
    }
    return out.str();
}

std::vector<smtp_extension> parse_extensions(const smtp_reply& ehlo_reply)
{
    std::vector<smtp_extension> extensions;
    // The first line is the server's greeting, not an extension.
    for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
        std::vector<std::string> parts = split_words(ehlo_reply.lines[i]);
        if (parts.empty())
            continue;
        smtp_extension extension;
        extension.keyword = upper_ascii(parts.front());
        extension.parameters.assign(parts.begin() + 1, parts.end());
        extensions.push_back(std::move(extension));
    }
    return extensions;
}

bool offers_extension(const std::vector<smtp_extension>& offered, std::string_view required)
{
    const std::vector<std::string> wanted = split_words(required);
    if (wanted.empty())
        return true;
    const std::string keyword = upper_ascii(wanted.front());
    return std::any_of(offered.begin(), offered.end(), [&](const smtp_extension& extension) {
        if (extension.keyword != keyword)
            return false;
        return std::all_of(wanted.begin() + 1, wanted.end(), [&](const std::string& parameter) {
            return std::any_of(extension.parameters.begin(), extension.parameters.end(),
                               [&](const std::string& have) { return upper_ascii(have) == upper_ascii(parameter); });
        });
    });
}

outcome check_smtp(const smtp_options& options, const deadline& until)
{
    try {
        // Bad options are the caller's bug (2), found before any traffic.
        require_single_line(options.helo_name, "--ehlo");
        require_single_line(options.mail_from, "--mail-from");
        require_single_line(options.rcpt_to, "--rcpt-to");
        for (const auto& extension : options.required_extensions)
            require_single_line(extension, "--require-ext");
        if (options.where.tls != tls_mode::none)
            verification_for(options.where);
    } catch (const check_failure& failure) {
        return failure.result();
    }
    return run_dialogue(options.where, default_port(options), until, "QUIT",
                        [&options](line_channel& channel) { return converse(channel, options); });
}

} // namespace msg
