#include "msg/imap.hpp"

#include "msg/credentials.hpp"
#include "msg/dialogue.hpp"
#include "msg/imap_session.hpp"
#include "msg/line_channel.hpp"
#include "msg/probe_message.hpp"
#include "msg/reply_text.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace msg {

namespace {

// What the store round trip APPENDs: recognizably a probe, explaining itself.
probe_message_text store_probe_text()
{
    probe_message_text text;
    text.body = {
        "Written by msg-probe imap --round-trip to prove that the store takes,",
        "keeps and returns mail; the probe deletes it again at once.",
    };
    return text;
}

// APPEND, SELECT, find, FETCH, flag \Deleted and EXPUNGE one probe message.
void round_trip(imap_session& imap, const std::string& mailbox)
{
    const std::string token = random_token();
    const std::string message_id = probe_message_id(token);
    const std::vector<std::string> message = probe_message(token, store_probe_text());
    const std::string name = printable_excerpt(mailbox, 64);

    imap_reply stored = imap.append(mailbox, message);
    if (stored.status == "NO" && stored.code() == "TRYCREATE") {
        // A dedicated probe mailbox on its first use, or removed by hand.
        const imap_reply created = imap.command_with_strings("CREATE", {mailbox});
        if (created.status != "NO" || created.code() != "ALREADYEXISTS")
            imap.expect_ok(created, "CREATE " + name);
        stored = imap.append(mailbox, message);
    }
    imap.expect_ok(stored, "APPEND to " + name);
    std::optional<std::uint32_t> uid;
    if (stored.code() == "APPENDUID") {
        const std::vector<std::string> parts = split_words(stored.code_arguments());
        if (parts.size() == 2)
            uid = parse_imap_uid(parts[1]);
    }

    imap.expect_ok(imap.command_with_strings("SELECT", {mailbox}), "SELECT " + name);
    if (!uid) {
        const std::vector<std::uint32_t> uids = imap.uid_search("HEADER Message-ID " + imap_quoted(message_id));
        if (uids.empty())
            imap_session::fail("probe message " + token + " not found in " + name + " after APPEND");
        uid = uids.back();
    }
    const std::string uid_text = std::to_string(*uid);

    const imap_reply fetched = imap.command("UID FETCH " + uid_text + " (BODY.PEEK[])", "UID FETCH");
    imap.expect_ok(fetched, "UID FETCH");
    const bool intact
        = std::any_of(fetched.untagged.begin(), fetched.untagged.end(), [&](const imap_response& item) {
              return item.untagged_keyword() == "FETCH"
                     && std::any_of(item.literals.begin(), item.literals.end(), [&](const std::string& body) {
                            return body.find("Message-ID: " + message_id) != std::string::npos;
                        });
          });
    if (!intact)
        imap_session::fail("probe message " + token + " (UID " + uid_text + ") not read back from " + name);

    // Earlier runs' leftovers (a blocked APPEND completes once a stale
    // lock clears, after that run's deadline) go with this one.
    imap.remove_probe_messages({*uid}, "probe message " + token + " (UID " + uid_text + ")", mailbox);
}

// The dialogue proper, on a connected channel; throws check_failure.
outcome converse(line_channel& channel, const imap_options& options, const credentials* login)
{
    imap_session imap(channel, login);
    const bool preauth = imap.start(options.where);
    const outcome certificate = certificate_outcome(channel, options.where.cert_warn_days);

    if (login != nullptr && !preauth)
        imap.log_in();
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
        if (!imap_quotable(options.mailbox))
            throw check_failure(outcome(ocf_code::err_args,
                                        "--mailbox must be ASCII (modified UTF-7 for other characters)"));
        if ((options.round_trip || !options.mailbox.empty()) && options.credentials_file.empty())
            throw check_failure(outcome(ocf_code::err_args, "--mailbox and --round-trip need --credentials-file"));
        if (options.where.tls != tls_mode::none)
            verification_for(options.where);
    } catch (const check_failure& failure) {
        return failure.result();
    }
    return run_login_dialogue(options.where, imap_default_port(options.where.tls), until, "bye LOGOUT", options.credentials_file,
                              [&options](line_channel& channel, const credentials* login) {
                                  return converse(channel, options, login);
                              });
}

std::uint16_t imap_default_port(tls_mode tls)
{
    return tls == tls_mode::implicit ? 993 : 143;
}

} // namespace msg
