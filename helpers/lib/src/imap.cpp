#include "msg/imap.hpp"

#include "msg/credentials.hpp"
#include "msg/dialogue.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/probe_message.hpp"
#include "msg/reply_text.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

namespace msg {

namespace {

// Lines carry capability lists, flags and SEARCH results: generous, yet a
// server streaming without newlines is cut off long before memory matters.
constexpr std::size_t max_line = 64 * 1024;
// What one command's reply may hold before the tagged status line: a probe
// mailbox answers in a handful of responses; more is a runaway server.
constexpr std::size_t max_untagged_responses = 1000;
constexpr std::size_t max_reply_bytes = 4 * imap_max_literal_bytes;
constexpr std::size_t max_literals_per_response = 8;
// Every probe message's Message-ID ends in this (RFC 6761: no real domain
// can carry it), which is how a run recognizes what earlier runs left.
constexpr const char* probe_id_suffix = "@msg-probe.invalid>";
// Leftovers removed per run: enough to drain a backlog in a few runs, few
// enough to keep the STORE line short.
constexpr std::size_t max_leftovers = 100;

bool starts_with(std::string_view text, std::string_view prefix)
{
    return text.substr(0, prefix.size()) == prefix;
}

bool is_digits(std::string_view text)
{
    return !text.empty()
           && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// An IMAP nz-number (UIDs): 1 to 4294967295, or nullopt.
std::optional<std::uint32_t> parse_uid(std::string_view text)
{
    if (!is_digits(text) || text.size() > 10)
        return std::nullopt;
    const unsigned long long value = std::stoull(std::string(text));
    if (value == 0 || value > 0xffffffffULL)
        return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

// One server response: its line, or lines joined where a literal {N}
// interrupted it; the literals' bytes are kept apart, their markers stay.
struct response {
    std::string text;
    std::vector<std::string> literals;

    std::size_t size() const
    {
        std::size_t total = text.size();
        for (const auto& literal : literals)
            total += literal.size();
        return total;
    }

    // For "* 3 EXPUNGE" "EXPUNGE", for "* SEARCH 7" "SEARCH": upper-cased.
    std::string untagged_keyword() const
    {
        const std::vector<std::string> parts = split_words(std::string_view(text).substr(0, 64));
        if (parts.size() >= 3 && is_digits(parts[1]))
            return upper_ascii(parts[2]);
        return parts.size() >= 2 ? upper_ascii(parts[1]) : std::string();
    }
};

// "[CODE arguments] text" -> {"CODE", "arguments"}; empty without a code.
std::pair<std::string, std::string> response_code(std::string_view text)
{
    if (text.empty() || text.front() != '[')
        return {};
    const auto end = text.find(']');
    if (end == std::string_view::npos)
        return {};
    const std::string_view inside = text.substr(1, end - 1);
    const auto space = inside.find(' ');
    if (space == std::string_view::npos)
        return {upper_ascii(inside), {}};
    return {upper_ascii(inside.substr(0, space)), std::string(inside.substr(space + 1))};
}

// How a command ended: its tagged status, or a continuation request.
struct reply {
    std::string status;                // OK, NO or BAD; empty for a continuation request
    std::string text;                  // after the status: "[SERVERBUG] Internal error ..."
    std::vector<response> untagged;    // what came before, in order
    bool continuation = false;         // "+": the server awaits the literal announced

    std::string code() const { return response_code(text).first; }
    std::string code_arguments() const { return response_code(text).second; }

    bool has_untagged(std::string_view keyword) const
    {
        return std::any_of(untagged.begin(), untagged.end(),
                           [&](const response& item) { return item.untagged_keyword() == keyword; });
    }
};

// The literal {N} (or literal8 ~{N}) that ends `line`, if any; throws 1 if
// N is over the limit, before a byte of it is read.
std::optional<std::size_t> announced_literal(std::string_view line, const std::string& what)
{
    if (line.empty() || line.back() != '}')
        return std::nullopt;
    const auto open = line.rfind('{');
    if (open == std::string_view::npos)
        return std::nullopt;
    const std::string_view digits = line.substr(open + 1, line.size() - open - 2);
    if (!is_digits(digits))
        return std::nullopt;
    // Judged as text first: a 30-digit length must not overflow on its way to the limit check.
    if (digits.size() > 9 || std::stoul(std::string(digits)) > imap_max_literal_bytes) {
        std::ostringstream reason;
        reason << what << " announces a literal of " << printable_excerpt(digits, 24) << " bytes, over the "
               << imap_max_literal_bytes << "-byte limit";
        throw check_failure(outcome::failed(reason.str()));
    }
    return std::stoul(std::string(digits));
}

// RFC 3501 quoted strings hold 7-bit text without CR, LF or NUL.
bool quotable(std::string_view text)
{
    return std::all_of(text.begin(), text.end(), [](unsigned char c) {
        return c != 0 && c < 0x80 && c != '\r' && c != '\n';
    });
}

std::string quoted_string(std::string_view text)
{
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\')
            out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

// The probe message, line by line (CR LF is added on the wire).
std::vector<std::string> probe_message(const std::string& token, const std::string& message_id)
{
    return {
        "From: msg-probe <msg-probe@msg-probe.invalid>",
        "To: msg-probe <msg-probe@msg-probe.invalid>",
        "Date: " + rfc5322_date_now(),
        "Subject: msg-probe store check " + token,
        "Message-ID: " + message_id,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Written by msg-probe imap --round-trip to prove that the store takes,",
        "keeps and returns mail; the probe deletes it again at once.",
        "Token: " + token,
    };
}

// One IMAP session over a connected channel: tags, untagged data,
// literals both ways, capabilities. Every failure is a check_failure.
class session {
public:
    session(line_channel& channel, const credentials* login) : channel_(channel), login_(login) {}

    // Reads the greeting; true for PREAUTH. Throws 1 for BYE or anything else.
    bool greeting()
    {
        const response hello = read_response("IMAP greeting");
        const std::vector<std::string> parts = split_words(std::string_view(hello.text).substr(0, 16));
        const std::string status = parts.size() >= 2 && parts[0] == "*" ? upper_ascii(parts[1]) : std::string();
        if (status == "BYE")
            fail("IMAP session rejected: " + excerpt(hello.text));
        if (status != "OK" && status != "PREAUTH")
            fail("malformed IMAP greeting: " + excerpt(hello.text));
        note_capabilities(hello.text.substr(2 + status.size()));
        return status == "PREAUTH";
    }

    // Asks for the capabilities afresh (after TLS, RFC 3501 6.2.1, or LOGIN).
    void refresh_capabilities()
    {
        capabilities_.clear();
        expect_ok(command("CAPABILITY", "CAPABILITY"), "CAPABILITY");
        if (capabilities_.empty())
            fail("reply to CAPABILITY from " + channel_.peer() + " lists no capabilities");
    }

    bool offers(const std::string& capability) const { return capabilities_.count(capability) != 0; }

    // Sends `tag arguments` and awaits its tagged reply; `verb` alone names
    // the command in reasons and logs, so arguments never reach either.
    reply command(const std::string& arguments, const std::string& verb)
    {
        const std::string tag = next_tag();
        channel_.write_line(tag + " " + arguments, verb);
        return await(tag, verb);
    }

    // `verb` with string arguments: quoted where RFC 3501 allows it, else
    // (8-bit text) as synchronizing literals sent once the server says "+".
    reply command_with_strings(const std::string& verb, const std::vector<std::string_view>& arguments)
    {
        const std::string tag = next_tag();
        std::string line = tag + " " + verb;
        for (const std::string_view argument : arguments) {
            line += ' ';
            if (quotable(argument)) {
                line += quoted_string(argument);
                continue;
            }
            line += "{" + std::to_string(argument.size()) + "}";
            channel_.write_line(line, verb);
            reply go_on = await(tag, verb, true);
            if (!go_on.continuation)
                return go_on;
            line = argument;
        }
        channel_.write_line(line, verb);
        return await(tag, verb);
    }

    // APPEND of `message` lines to `mailbox`, flagged \Seen so it never
    // shows as new mail to anyone who opens the probe mailbox.
    reply append(const std::string& mailbox, const std::vector<std::string>& message)
    {
        std::size_t size = 0;
        for (const auto& line : message)
            size += line.size() + 2;
        const std::string tag = next_tag();
        const std::string announce
            = tag + " APPEND " + quoted_string(mailbox) + " (\\Seen) {" + std::to_string(size) + "}";
        channel_.write_line(announce, "APPEND");
        reply go_on = await(tag, "APPEND", true);
        if (!go_on.continuation)
            return go_on;
        for (const auto& line : message)
            channel_.write_line(line, "APPEND");
        // The line break that ends the command after the literal.
        channel_.write_line("", "APPEND");
        return await(tag, "APPEND");
    }

    // Throws 1 unless `result` is a tagged OK; `step` names what was refused.
    void expect_ok(const reply& result, const std::string& step) const
    {
        if (result.status == "OK")
            return;
        fail(step + " rejected: " + result.status + " " + excerpt(result.text));
    }

    // Server text for a reason: the password masked, then made printable and short.
    std::string excerpt(std::string_view text) const
    {
        return printable_excerpt(login_ != nullptr ? login_->redact(text) : std::string(text));
    }

    [[noreturn]] static void fail(const std::string& reason) { throw check_failure(outcome::failed(reason)); }

private:
    std::string next_tag()
    {
        ++tags_used_;
        return "a" + std::to_string(tags_used_);
    }

    // One response, reading the literals it announces and the line after each.
    response read_response(const std::string& what)
    {
        response next;
        std::string line = channel_.read_line(max_line, what);
        for (;;) {
            next.text += line;
            const std::optional<std::size_t> length = announced_literal(line, what);
            if (!length)
                return next;
            if (next.literals.size() == max_literals_per_response) {
                std::ostringstream reason;
                reason << what << " holds more than " << max_literals_per_response << " literals";
                fail(reason.str());
            }
            std::ostringstream awaited;
            awaited << "complete " << *length << "-byte literal in " << what;
            next.literals.push_back(channel_.read_exact(*length, awaited.str()));
            line = channel_.read_line(max_line, "rest of " + what + " after a literal");
        }
    }

    // Reads until the reply tagged `tag`; with `literal_pending` a
    // continuation request ("+") also ends it.
    reply await(const std::string& tag, const std::string& verb, bool literal_pending = false)
    {
        const std::string what = "reply to " + verb;
        reply result;
        std::size_t kept = 0;
        for (;;) {
            response next = read_response(result.untagged.empty() ? what : "complete " + what);
            const std::string_view text = next.text;
            if (text == "+" || starts_with(text, "+ ")) {
                if (!literal_pending)
                    fail("unexpected continuation request in " + what + ": " + excerpt(text));
                result.continuation = true;
                return result;
            }
            if (starts_with(text, "* ")) {
                note_untagged(next, verb);
                kept += next.size();
                if (result.untagged.size() == max_untagged_responses || kept > max_reply_bytes) {
                    std::ostringstream reason;
                    reason << what << " longer than " << max_untagged_responses << " responses or "
                           << max_reply_bytes << " bytes";
                    fail(reason.str());
                }
                result.untagged.push_back(std::move(next));
                continue;
            }
            const auto space = text.find(' ');
            const std::string status = space == std::string_view::npos
                                           ? std::string()
                                           : upper_ascii(text.substr(space + 1, text.find(' ', space + 1) - space - 1));
            if (text.substr(0, space) != tag || (status != "OK" && status != "NO" && status != "BAD"))
                fail("malformed " + what + ": " + excerpt(text));
            result.status = status;
            const auto text_start = space + 1 + status.size() + 1;
            result.text = text_start < text.size() ? std::string(text.substr(text_start)) : std::string();
            note_capabilities(result.text);
            log_debug("IMAP " + channel_.peer() + ": " + verb + " -> " + status);
            return result;
        }
    }

    void note_untagged(const response& item, const std::string& verb)
    {
        const std::string keyword = item.untagged_keyword();
        // The server is going away (shutdown, idle timeout, fatal error):
        // its BYE says why better than the closed connection that follows.
        if (keyword == "BYE" && verb != "LOGOUT")
            fail("IMAP server " + channel_.peer() + " ended the session during " + verb + ": " + excerpt(item.text));
        if (keyword == "CAPABILITY") {
            const std::string_view text = item.text;
            replace_capabilities(text.substr(std::min(text.size(), text.find(' ', 2))));
        } else if (keyword == "OK" || keyword == "PREAUTH") {
            note_capabilities(std::string_view(item.text).substr(2 + keyword.size()));
        }
    }

    // Takes the capabilities from a [CAPABILITY ...] code at the start of `text`.
    void note_capabilities(std::string_view text)
    {
        while (!text.empty() && text.front() == ' ')
            text.remove_prefix(1);
        const auto [code, arguments] = response_code(text);
        if (code == "CAPABILITY")
            replace_capabilities(arguments);
    }

    void replace_capabilities(std::string_view list)
    {
        capabilities_.clear();
        for (const std::string& word : split_words(list))
            capabilities_.insert(upper_ascii(word));
    }

    line_channel& channel_;
    const credentials* login_;
    unsigned tags_used_ = 0;
    std::set<std::string> capabilities_;
};

void log_in(session& imap, const line_channel& channel, const credentials& login)
{
    const bool secured = channel.peer_certificate().has_value();
    // RFC 3501 7.2.1: LOGINDISABLED means LOGIN must not be tried, and over
    // plaintext it would only hand the password to anyone listening.
    if (imap.offers("LOGINDISABLED")) {
        session::fail("IMAP server " + channel.peer() + " refuses LOGIN"
                      + (secured ? std::string(" (LOGINDISABLED)")
                                 : std::string(" over plaintext (LOGINDISABLED): use --starttls or --tls")));
    }
    const reply result = imap.command_with_strings("LOGIN", {login.username(), login.password()});
    imap.expect_ok(result, "LOGIN as " + printable_excerpt(login.username(), 64));
    // Dovecot and others announce more after login (UIDPLUS among them).
    if (result.code() != "CAPABILITY" && !result.has_untagged("CAPABILITY"))
        imap.refresh_capabilities();
}

// The UIDs a UID SEARCH reply lists, in the server's order.
std::vector<std::uint32_t> search_results(const reply& found)
{
    std::vector<std::uint32_t> uids;
    for (const response& item : found.untagged) {
        if (item.untagged_keyword() != "SEARCH")
            continue;
        for (const std::string& word : split_words(item.text)) {
            if (const auto number = parse_uid(word))
                uids.push_back(*number);
        }
    }
    return uids;
}

// APPEND, SELECT, find, FETCH, flag \Deleted and EXPUNGE one probe message.
void round_trip(session& imap, const std::string& mailbox)
{
    const std::string token = random_token();
    const std::string message_id = "<msg-probe." + token + probe_id_suffix;
    const std::vector<std::string> message = probe_message(token, message_id);
    const std::string name = printable_excerpt(mailbox, 64);

    reply stored = imap.append(mailbox, message);
    if (stored.status == "NO" && stored.code() == "TRYCREATE") {
        // A dedicated probe mailbox on its first use, or removed by hand.
        const reply created = imap.command_with_strings("CREATE", {mailbox});
        if (created.status != "NO" || created.code() != "ALREADYEXISTS")
            imap.expect_ok(created, "CREATE " + name);
        stored = imap.append(mailbox, message);
    }
    imap.expect_ok(stored, "APPEND to " + name);
    std::optional<std::uint32_t> uid;
    if (stored.code() == "APPENDUID") {
        const std::vector<std::string> parts = split_words(stored.code_arguments());
        if (parts.size() == 2)
            uid = parse_uid(parts[1]);
    }

    imap.expect_ok(imap.command_with_strings("SELECT", {mailbox}), "SELECT " + name);
    if (!uid) {
        const reply found = imap.command("UID SEARCH HEADER Message-ID " + quoted_string(message_id), "UID SEARCH");
        imap.expect_ok(found, "UID SEARCH");
        const std::vector<std::uint32_t> uids = search_results(found);
        if (uids.empty())
            session::fail("probe message " + token + " not found in " + name + " after APPEND");
        uid = uids.back();
    }
    const std::string uid_text = std::to_string(*uid);

    const reply fetched = imap.command("UID FETCH " + uid_text + " (BODY.PEEK[])", "UID FETCH");
    imap.expect_ok(fetched, "UID FETCH");
    const bool intact = std::any_of(fetched.untagged.begin(), fetched.untagged.end(), [&](const response& item) {
        return item.untagged_keyword() == "FETCH"
               && std::any_of(item.literals.begin(), item.literals.end(), [&](const std::string& body) {
                      return body.find("Message-ID: " + message_id) != std::string::npos;
                  });
    });
    if (!intact)
        session::fail("probe message " + token + " (UID " + uid_text + ") not read back from " + name);

    // Probe messages of earlier runs whose deadline passed after the store
    // had taken their APPEND (a blocked APPEND completes once a stale lock
    // clears) go with this one, so none pile up; only those older than ten
    // minutes (WITHIN, RFC 5032), so a concurrent run keeps its own.
    std::string doomed = uid_text;
    if (imap.offers("WITHIN")) {
        const reply old = imap.command("UID SEARCH OLDER 600 HEADER Message-ID " + quoted_string(probe_id_suffix),
                                       "UID SEARCH");
        imap.expect_ok(old, "UID SEARCH");
        std::size_t leftovers = 0;
        for (const std::uint32_t other : search_results(old)) {
            if (other == *uid || leftovers == max_leftovers)
                continue;
            doomed += "," + std::to_string(other);
            ++leftovers;
        }
        if (leftovers > 0)
            log_info("IMAP " + name + ": removing " + std::to_string(leftovers) + " earlier probe message(s)");
    }

    imap.expect_ok(imap.command("UID STORE " + doomed + " +FLAGS.SILENT (\\Deleted)", "UID STORE"), "UID STORE");
    // Without UIDPLUS, EXPUNGE removes every \Deleted message in the
    // mailbox: one more reason the agent gives the probe its own mailbox.
    const std::string expunge = imap.offers("UIDPLUS") ? "UID EXPUNGE" : "EXPUNGE";
    const reply expunged
        = imap.command(imap.offers("UIDPLUS") ? "UID EXPUNGE " + doomed : std::string("EXPUNGE"), expunge);
    imap.expect_ok(expunged, expunge);
    if (!expunged.has_untagged("EXPUNGE"))
        session::fail("probe message " + token + " (UID " + uid_text + ") still in " + name + " after " + expunge);
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const imap_options& options, const credentials* login)
{
    const probe_options& where = options.where;
    session imap(channel, login);
    const bool preauth = imap.greeting();
    imap.refresh_capabilities();

    if (where.tls == tls_mode::starttls) {
        // RFC 3501 6.2.1: STARTTLS exists only before authentication.
        if (preauth)
            session::fail("IMAP server " + channel.peer() + " greeted with PREAUTH: no STARTTLS possible");
        if (!imap.offers("STARTTLS"))
            session::fail("STARTTLS not offered by " + channel.peer());
        imap.expect_ok(imap.command("STARTTLS", "STARTTLS"), "STARTTLS");
        channel.start_tls(verification_for(where));
        // Everything learnt before TLS is void, capabilities included.
        imap.refresh_capabilities();
    }
    const outcome certificate = certificate_outcome(channel, where.cert_warn_days);

    if (login != nullptr && !preauth)
        log_in(imap, channel, *login);
    if (options.round_trip)
        round_trip(imap, options.mailbox.empty() ? std::string("INBOX") : options.mailbox);
    else if (!options.mailbox.empty())
        imap.expect_ok(imap.command_with_strings("SELECT", {options.mailbox}),
                       "SELECT " + printable_excerpt(options.mailbox, 64));

    imap.expect_ok(imap.command("LOGOUT", "LOGOUT"), "LOGOUT");
    channel.close();
    return certificate;
}

} // namespace

outcome check_imap(const imap_options& options, const deadline& until)
{
    try {
        // Bad options are the caller's bug (2), found before any traffic.
        require_single_line(options.mailbox, "--mailbox");
        if (!quotable(options.mailbox))
            throw check_failure(outcome(ocf_code::err_args,
                                        "--mailbox must be ASCII (modified UTF-7 for other characters)"));
        if ((options.round_trip || !options.mailbox.empty()) && options.credentials_file.empty())
            throw check_failure(outcome(ocf_code::err_args, "--mailbox and --round-trip need --credentials-file"));
        if (options.where.tls != tls_mode::none)
            verification_for(options.where);
    } catch (const check_failure& failure) {
        return failure.result();
    }
    const std::uint16_t default_port = options.where.tls == tls_mode::implicit ? 993 : 143;
    return run_login_dialogue(options.where, default_port, until, "bye LOGOUT", options.credentials_file,
                              [&options](line_channel& channel, const credentials* login) {
                                  return converse(channel, options, login);
                              });
}

} // namespace msg
