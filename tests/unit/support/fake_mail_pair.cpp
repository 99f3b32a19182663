#include "fake_mail_pair.hpp"

#include "probe_checks.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <sstream>

namespace msg_test {

namespace {

using clock = std::chrono::steady_clock;

struct stored_message {
    std::uint32_t uid;
    std::string text;
    clock::time_point visible_at; // delivered: shows up in the mailbox from then on
    bool old = false;             // OLDER 600 finds it
    bool deleted = false;
};

std::string upper(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return text;
}

std::string base64_decoded(const std::string& text)
{
    std::string out(text.size(), '\0');
    const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                       reinterpret_cast<const unsigned char*>(text.data()),
                                       static_cast<int>(text.size()));
    if (length < 0)
        return {};
    // EVP_DecodeBlock counts the zero bytes that the padding stands for.
    std::size_t size = static_cast<std::size_t>(length);
    for (std::size_t i = text.size(); i > 0 && text[i - 1] == '=' && size > 0; --i)
        --size;
    out.resize(size);
    return out;
}

// The UIDs of a sequence set "3,4,7" (no ranges: the probe sends none).
std::vector<std::uint32_t> uid_set(const std::string& text)
{
    std::vector<std::uint32_t> uids;
    std::istringstream parts(text);
    for (std::string part; std::getline(parts, part, ',');) {
        if (!part.empty() && std::all_of(part.begin(), part.end(), [](unsigned char c) { return std::isdigit(c); }))
            uids.push_back(static_cast<std::uint32_t>(std::stoul(part)));
    }
    return uids;
}

} // namespace

struct fake_mail_pair::state {
    fake_mail_setup setup;
    mutable std::mutex mutex;
    std::vector<stored_message> mailbox;
    std::vector<std::string> submitted;
    std::uint32_t next_uid = 1;
    std::map<std::string, std::size_t> imap_seen; // verb -> times it came

    // SMTP conversation state (one connection at a time).
    bool in_data = false;
    std::string data;
    int auth_login_step = 0; // 1: username awaited, 2: password awaited
    std::string auth_login_user;

    static bool credentials_match(const std::string& user, const std::string& password)
    {
        return user == "probe" && password == test_password;
    }

    static std::string auth_reply(bool accepted)
    {
        return accepted ? "235 2.7.0 Authentication successful\r\n" : "535 5.7.8 Error: authentication failed\r\n";
    }

    reaction smtp_line(const std::string& line)
    {
        const std::lock_guard lock(mutex);
        if (in_data) {
            if (line != ".") {
                data += (line.size() > 1 && line.front() == '.' ? line.substr(1) : line) + "\r\n";
                return {};
            }
            in_data = false;
            if (const reaction special = scripted("."); !special.reply.empty() || special.next != reaction::then::go_on)
                return special;
            submitted.push_back(data);
            if (setup.delivers)
                mailbox.push_back({next_uid++, data, clock::now() + setup.delivery_delay});
            return {"250 2.0.0 Ok: queued as FAKE" + std::to_string(submitted.size()) + "\r\n"};
        }
        if (auth_login_step == 1) {
            auth_login_user = base64_decoded(line);
            auth_login_step = 2;
            return {"334 UGFzc3dvcmQ6\r\n"};
        }
        if (auth_login_step == 2) {
            auth_login_step = 0;
            return {auth_reply(credentials_match(auth_login_user, base64_decoded(line)))};
        }
        const std::string verb = upper(line.substr(0, std::min(line.find_first_of(" :"), line.size())));
        if (const reaction special = scripted(verb); !special.reply.empty() || special.next != reaction::then::go_on)
            return special;
        if (verb == "EHLO") {
            std::string reply = "250-fake.example.com\r\n250-PIPELINING\r\n";
            if (setup.smtp_auth)
                reply += "250-AUTH " + setup.smtp_auth_mechanisms + "\r\n";
            return {reply + "250 8BITMIME\r\n"};
        }
        if (verb == "AUTH") {
            const std::string rest = line.substr(std::min(line.size(), std::size_t{5}));
            if (upper(rest) == "LOGIN") {
                auth_login_step = 1;
                return {"334 VXNlcm5hbWU6\r\n"};
            }
            if (upper(rest.substr(0, 6)) == "PLAIN ") {
                const std::string decoded = base64_decoded(rest.substr(6));
                const auto second = decoded.find('\0', 1);
                const bool ok = !decoded.empty() && decoded.front() == '\0' && second != std::string::npos
                                && credentials_match(decoded.substr(1, second - 1), decoded.substr(second + 1));
                return {auth_reply(ok)};
            }
            return {"504 5.5.4 Unsupported mechanism\r\n"};
        }
        if (verb == "MAIL" || verb == "RCPT" || verb == "RSET" || verb == "NOOP")
            return {"250 2.1.0 Ok\r\n"};
        if (verb == "DATA") {
            in_data = true;
            data.clear();
            return {"354 End data with <CR><LF>.<CR><LF>\r\n"};
        }
        if (verb == "QUIT")
            return {"221 2.0.0 Bye\r\n", reaction::then::close};
        return {"502 5.5.2 Error: command not recognized\r\n"};
    }

    // A reply or stall the setup ordains for `verb` (SMTP), else an empty reaction.
    reaction scripted(const std::string& verb) const
    {
        if (verb == setup.smtp_stall_at)
            return {"", reaction::then::stall};
        if (const auto special = setup.smtp_replies.find(verb); special != setup.smtp_replies.end())
            return {special->second};
        return {};
    }

    std::vector<const stored_message*> visible() const
    {
        std::vector<const stored_message*> found;
        const auto now = clock::now();
        for (const auto& message : mailbox) {
            if (message.visible_at <= now)
                found.push_back(&message);
        }
        return found;
    }

    reaction imap_line(const std::string& line)
    {
        const std::lock_guard lock(mutex);
        const auto space = line.find(' ');
        const std::string tag = line.substr(0, space);
        const std::string rest = space == std::string::npos ? std::string() : line.substr(space + 1);
        std::string verb = upper(rest.substr(0, rest.find(' ')));
        std::string arguments = rest.find(' ') == std::string::npos ? std::string() : rest.substr(rest.find(' ') + 1);
        if (verb == "UID") {
            const auto after = arguments.find(' ');
            verb += " " + upper(arguments.substr(0, after));
            arguments = after == std::string::npos ? std::string() : arguments.substr(after + 1);
        }
        const std::size_t seen = ++imap_seen[verb];
        if (verb == setup.imap_stall_at && seen == setup.imap_stall_occurrence)
            return {"", reaction::then::stall};
        if (const auto special = setup.imap_replies.find(verb); special != setup.imap_replies.end())
            return {tag + " " + special->second};
        const std::string ok = tag + " OK " + verb + " completed.\r\n";

        if (verb == "CAPABILITY")
            return {"* CAPABILITY " + setup.imap_capabilities + "\r\n" + ok};
        if (verb == "LOGIN") {
            if (arguments != "\"probe\" \"" + std::string(test_password) + "\"")
                return {tag + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"};
            return {tag + " OK [CAPABILITY " + setup.imap_capabilities + "] Logged in\r\n"};
        }
        if (verb == "SELECT" || verb == "NOOP") {
            const std::string exists = "* " + std::to_string(visible().size()) + " EXISTS\r\n";
            return {exists + (verb == "SELECT" ? tag + " OK [READ-WRITE] Select completed.\r\n" : ok)};
        }
        if (verb == "UID SEARCH") {
            std::string found = "* SEARCH";
            const bool old_ones = arguments.rfind("OLDER 600 ", 0) == 0;
            const std::string header = "HEADER Message-ID \"";
            const auto at = arguments.find(header);
            if (at == std::string::npos)
                return {tag + " BAD unsupported search\r\n"};
            std::string wanted = arguments.substr(at + header.size());
            wanted.pop_back();
            for (const stored_message* message : visible()) {
                if (old_ones && !message->old)
                    continue;
                if (message->text.find("Message-ID: ") != std::string::npos
                    && message->text.find(wanted) != std::string::npos)
                    found += " " + std::to_string(message->uid);
            }
            return {found + "\r\n" + ok};
        }
        if (verb == "UID STORE") {
            for (const std::uint32_t uid : uid_set(arguments.substr(0, arguments.find(' ')))) {
                for (auto& message : mailbox) {
                    if (message.uid == uid)
                        message.deleted = true;
                }
            }
            return {ok};
        }
        if (verb == "UID EXPUNGE" || verb == "EXPUNGE") {
            const std::vector<std::uint32_t> only = uid_set(arguments);
            std::string expunged;
            for (std::size_t i = mailbox.size(); i-- > 0;) {
                const bool chosen = verb == "EXPUNGE"
                                    || std::find(only.begin(), only.end(), mailbox[i].uid) != only.end();
                if (mailbox[i].deleted && chosen) {
                    expunged += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
                    mailbox.erase(mailbox.begin() + static_cast<std::ptrdiff_t>(i));
                }
            }
            return {expunged + ok};
        }
        if (verb == "LOGOUT")
            return {"* BYE Logging out\r\n" + ok, reaction::then::close};
        return {tag + " BAD unknown command\r\n"};
    }
};

namespace {

std::shared_ptr<fake_mail_pair::state> make_state(fake_mail_setup setup)
{
    auto made = std::make_shared<fake_mail_pair::state>();
    made->setup = std::move(setup);
    for (std::size_t i = 0; i < made->setup.old_probe_messages; ++i) {
        const std::string id = "<msg-probe.old" + std::to_string(i) + "@msg-probe.invalid>";
        made->mailbox.push_back({made->next_uid++, "Message-ID: " + id + "\r\n\r\nleft behind\r\n",
                                 clock::now() - std::chrono::hours(1), true});
    }
    return made;
}

server_script smtp_script(const std::shared_ptr<fake_mail_pair::state>& shared)
{
    server_script script;
    script.send("220 fake.example.com ESMTP ready\r\n").respond([shared](const std::string& line) {
        return shared->smtp_line(line);
    });
    return script;
}

server_script imap_script(const std::shared_ptr<fake_mail_pair::state>& shared)
{
    server_script script;
    script.send("* OK [CAPABILITY " + shared->setup.imap_capabilities + "] fake IMAP ready.\r\n")
        .respond([shared](const std::string& line) { return shared->imap_line(line); });
    return script;
}

} // namespace

fake_mail_pair::fake_mail_pair(fake_mail_setup setup)
    : state_(make_state(std::move(setup))), smtp_(smtp_script(state_)), imap_(imap_script(state_))
{
}

fake_mail_pair::~fake_mail_pair() = default;

std::vector<std::string> fake_mail_pair::submitted() const
{
    const std::lock_guard lock(state_->mutex);
    return state_->submitted;
}

std::vector<std::uint32_t> fake_mail_pair::mailbox_uids() const
{
    const std::lock_guard lock(state_->mutex);
    std::vector<std::uint32_t> uids;
    for (const auto& message : state_->mailbox)
        uids.push_back(message.uid);
    return uids;
}

} // namespace msg_test
