#include "msg/smtp.hpp"

#include "msg/dialogue.hpp"
#include "msg/line_channel.hpp"
#include "msg/reply_text.hpp"
#include "msg/smtp_session.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace msg {

namespace {

std::string offered_list(const std::vector<smtp_extension>& offered)
{
    std::string list;
    for (const auto& extension : offered)
        list += (list.empty() ? "" : " ") + extension.keyword;
    return list.empty() ? "none" : list;
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const smtp_options& options)
{
    smtp_session session(channel, options.lmtp);
    const std::vector<smtp_extension> offered = session.open(options.where, options.helo_name);
    const outcome certificate = certificate_outcome(channel, options.where.cert_warn_days);

    for (const auto& required : options.required_extensions) {
        if (!offers_extension(offered, required))
            throw check_failure(outcome::failed("required extension " + printable_excerpt(required)
                                                + " not offered by " + channel.peer() + " (offers: "
                                                + printable_excerpt(offered_list(offered)) + ")"));
    }

    if (options.transaction) {
        // Up to RCPT only: the server commits to taking the mail (queue
        // space, recipient) without any mail being sent; RSET ends it.
        session.expect(session.command("MAIL FROM:" + smtp_path(options.mail_from), "MAIL FROM"), 250, 250,
                             "MAIL FROM");
        session.expect(session.command("RCPT TO:" + smtp_path(options.rcpt_to), "RCPT TO"), 250, 251,
                             "RCPT TO");
        session.expect(session.command("RSET", "RSET"), 250, 250, "RSET");
    }

    session.expect(session.command("NOOP", "NOOP"), 250, 250, "NOOP");
    session.expect(session.command("QUIT", "QUIT"), 221, 221, "QUIT");
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
    return run_dialogue(options.where, smtp_default_port(options.lmtp, options.where.tls), until, "QUIT",
                        [&options](line_channel& channel) { return converse(channel, options); });
}

std::uint16_t smtp_default_port(bool lmtp, tls_mode tls)
{
    if (lmtp)
        return 24;
    return tls == tls_mode::implicit ? 465 : 25;
}

} // namespace msg
