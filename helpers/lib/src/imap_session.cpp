#include "msg/imap_session.hpp"

#include "msg/dialogue.hpp"
#include "msg/imap.hpp"
#include "msg/log.hpp"
#include "msg/probe_message.hpp"
#include "msg/reply_text.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

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
// Leftovers removed per run: enough to drain a backlog in a few runs, few
// enough to keep the STORE line short.
constexpr std::size_t max_leftovers = 100;
// Only leftovers older than this (WITHIN, RFC 5032) go, so a concurrent
// run (another node probing the same mailbox) keeps its own message.
constexpr int leftover_age_seconds = 600;

bool starts_with(std::string_view text, std::string_view prefix)
{
    return text.substr(0, prefix.size()) == prefix;
}

bool is_digits(std::string_view text)
{
    return !text.empty()
           && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

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

std::string uid_set(const std::vector<std::uint32_t>& uids)
{
    std::string set;
    for (const std::uint32_t uid : uids)
        set += (set.empty() ? "" : ",") + std::to_string(uid);
    return set;
}

} // namespace

std::size_t imap_response::size() const
{
    std::size_t total = text.size();
    for (const auto& literal : literals)
        total += literal.size();
    return total;
}

std::string imap_response::untagged_keyword() const
{
    const std::vector<std::string> parts = split_words(std::string_view(text).substr(0, 64));
    if (parts.size() >= 3 && is_digits(parts[1]))
        return upper_ascii(parts[2]);
    return parts.size() >= 2 ? upper_ascii(parts[1]) : std::string();
}

std::string imap_reply::code() const
{
    return response_code(text).first;
}

std::string imap_reply::code_arguments() const
{
    return response_code(text).second;
}

bool imap_reply::has_untagged(std::string_view keyword) const
{
    return std::any_of(untagged.begin(), untagged.end(),
                       [&](const imap_response& item) { return item.untagged_keyword() == keyword; });
}

imap_session::imap_session(line_channel& channel, const credentials* login) : channel_(channel), login_(login) {}

bool imap_session::start(const probe_options& where)
{
    const bool preauth = greeting();
    refresh_capabilities();
    if (where.tls == tls_mode::starttls) {
        // RFC 3501 6.2.1: STARTTLS exists only before authentication.
        if (preauth)
            fail("IMAP server " + channel_.peer() + " greeted with PREAUTH: no STARTTLS possible");
        if (!offers("STARTTLS"))
            fail("STARTTLS not offered by " + channel_.peer());
        expect_ok(command("STARTTLS", "STARTTLS"), "STARTTLS");
        channel_.start_tls(verification_for(where));
        // Everything learnt before TLS is void, capabilities included.
        refresh_capabilities();
    }
    return preauth;
}

void imap_session::log_in()
{
    if (login_ == nullptr)
        fail("IMAP login without credentials");
    const bool secured = channel_.peer_certificate().has_value();
    // RFC 3501 7.2.1: LOGINDISABLED means LOGIN must not be tried, and over
    // plaintext it would only hand the password to anyone listening.
    if (offers("LOGINDISABLED")) {
        fail("IMAP server " + channel_.peer() + " refuses LOGIN"
             + (secured ? std::string(" (LOGINDISABLED)")
                        : std::string(" over plaintext (LOGINDISABLED): use --starttls or --tls")));
    }
    const imap_reply result = command_with_strings("LOGIN", {login_->username(), login_->password()});
    expect_ok(result, "LOGIN as " + printable_excerpt(login_->username(), 64));
    // Dovecot and others announce more after login (UIDPLUS among them).
    if (result.code() != "CAPABILITY" && !result.has_untagged("CAPABILITY"))
        refresh_capabilities();
}

bool imap_session::greeting()
{
    const imap_response hello = read_response("IMAP greeting");
    const std::vector<std::string> parts = split_words(std::string_view(hello.text).substr(0, 16));
    const std::string status = parts.size() >= 2 && parts[0] == "*" ? upper_ascii(parts[1]) : std::string();
    if (status == "BYE")
        fail("IMAP session rejected: " + excerpt(hello.text));
    if (status != "OK" && status != "PREAUTH")
        fail("malformed IMAP greeting: " + excerpt(hello.text));
    note_capabilities(hello.text.substr(2 + status.size()));
    return status == "PREAUTH";
}

void imap_session::refresh_capabilities()
{
    capabilities_.clear();
    expect_ok(command("CAPABILITY", "CAPABILITY"), "CAPABILITY");
    if (capabilities_.empty())
        fail("reply to CAPABILITY from " + channel_.peer() + " lists no capabilities");
}

imap_reply imap_session::command(const std::string& arguments, const std::string& verb)
{
    const std::string tag = next_tag();
    channel_.write_line(tag + " " + arguments, verb);
    return await(tag, verb);
}

imap_reply imap_session::command_with_strings(const std::string& verb, const std::vector<std::string_view>& arguments)
{
    const std::string tag = next_tag();
    std::string line = tag + " " + verb;
    for (const std::string_view argument : arguments) {
        line += ' ';
        if (imap_quotable(argument)) {
            line += imap_quoted(argument);
            continue;
        }
        line += "{" + std::to_string(argument.size()) + "}";
        channel_.write_line(line, verb);
        imap_reply go_on = await(tag, verb, true);
        if (!go_on.continuation)
            return go_on;
        line = argument;
    }
    channel_.write_line(line, verb);
    return await(tag, verb);
}

imap_reply imap_session::append(const std::string& mailbox, const std::vector<std::string>& message)
{
    std::size_t size = 0;
    for (const auto& line : message)
        size += line.size() + 2;
    const std::string tag = next_tag();
    const std::string announce = tag + " APPEND " + imap_quoted(mailbox) + " (\\Seen) {" + std::to_string(size) + "}";
    channel_.write_line(announce, "APPEND");
    imap_reply go_on = await(tag, "APPEND", true);
    if (!go_on.continuation)
        return go_on;
    for (const auto& line : message)
        channel_.write_line(line, "APPEND");
    // The line break that ends the command after the literal.
    channel_.write_line("", "APPEND");
    return await(tag, "APPEND");
}

std::vector<std::uint32_t> imap_session::uid_search(const std::string& criteria)
{
    const imap_reply found = command("UID SEARCH " + criteria, "UID SEARCH");
    expect_ok(found, "UID SEARCH");
    std::vector<std::uint32_t> uids;
    for (const imap_response& item : found.untagged) {
        if (item.untagged_keyword() != "SEARCH")
            continue;
        for (const std::string& word : split_words(item.text)) {
            if (const auto number = parse_imap_uid(word))
                uids.push_back(*number);
        }
    }
    return uids;
}

std::size_t imap_session::remove_probe_messages(const std::vector<std::uint32_t>& own, const std::string& own_name,
                                                const std::string& mailbox)
{
    // Probe messages of earlier runs (an APPEND the store took after that
    // run's deadline, a mail delivered after the run gave up on it) go with
    // this run's, so none pile up; only those older than ten minutes, so a
    // concurrent run keeps its own.
    std::vector<std::uint32_t> doomed = own;
    std::size_t leftovers = 0;
    const std::string name = printable_excerpt(mailbox, 64);
    if (offers("WITHIN")) {
        const std::vector<std::uint32_t> old = uid_search("OLDER " + std::to_string(leftover_age_seconds)
                                                          + " HEADER Message-ID " + imap_quoted(probe_id_suffix));
        for (const std::uint32_t other : old) {
            if (std::find(doomed.begin(), doomed.end(), other) != doomed.end() || leftovers == max_leftovers)
                continue;
            doomed.push_back(other);
            ++leftovers;
        }
        if (leftovers > 0)
            log_info("IMAP " + name + ": removing " + std::to_string(leftovers) + " earlier probe message(s)");
    }
    if (doomed.empty())
        return 0;

    const std::string set = uid_set(doomed);
    expect_ok(command("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)", "UID STORE"), "UID STORE");
    // Without UIDPLUS, EXPUNGE removes every \Deleted message in the
    // mailbox: one more reason the agents give the probe its own mailbox.
    const std::string expunge = offers("UIDPLUS") ? "UID EXPUNGE" : "EXPUNGE";
    const imap_reply expunged = command(offers("UIDPLUS") ? "UID EXPUNGE " + set : std::string("EXPUNGE"), expunge);
    expect_ok(expunged, expunge);
    if (!expunged.has_untagged("EXPUNGE"))
        fail((own.empty() ? std::string("earlier probe messages") : own_name) + " still in " + name + " after "
             + expunge);
    return leftovers;
}

void imap_session::expect_ok(const imap_reply& result, const std::string& step) const
{
    if (result.status == "OK")
        return;
    fail(step + " rejected: " + result.status + " " + excerpt(result.text));
}

std::string imap_session::excerpt(std::string_view text) const
{
    return printable_excerpt(login_ != nullptr ? login_->redact(text) : std::string(text));
}

void imap_session::fail(const std::string& reason)
{
    throw check_failure(outcome::failed(reason));
}

std::string imap_session::next_tag()
{
    ++tags_used_;
    return "a" + std::to_string(tags_used_);
}

// One response, reading the literals it announces and the line after each.
imap_response imap_session::read_response(const std::string& what)
{
    imap_response next;
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
imap_reply imap_session::await(const std::string& tag, const std::string& verb, bool literal_pending)
{
    const std::string what = "reply to " + verb;
    imap_reply result;
    std::size_t kept = 0;
    for (;;) {
        imap_response next = read_response(result.untagged.empty() ? what : "complete " + what);
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
                reason << what << " longer than " << max_untagged_responses << " responses or " << max_reply_bytes
                       << " bytes";
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

void imap_session::note_untagged(const imap_response& item, const std::string& verb)
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
void imap_session::note_capabilities(std::string_view text)
{
    while (!text.empty() && text.front() == ' ')
        text.remove_prefix(1);
    const auto [code, arguments] = response_code(text);
    if (code == "CAPABILITY")
        replace_capabilities(arguments);
}

void imap_session::replace_capabilities(std::string_view list)
{
    capabilities_.clear();
    for (const std::string& word : split_words(list))
        capabilities_.insert(upper_ascii(word));
}

std::optional<std::uint32_t> parse_imap_uid(std::string_view text)
{
    if (!is_digits(text) || text.size() > 10)
        return std::nullopt;
    const unsigned long long value = std::stoull(std::string(text));
    if (value == 0 || value > 0xffffffffULL)
        return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

bool imap_quotable(std::string_view text)
{
    return std::all_of(text.begin(), text.end(), [](unsigned char c) {
        return c != 0 && c < 0x80 && c != '\r' && c != '\n';
    });
}

std::string imap_quoted(std::string_view text)
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

} // namespace msg
