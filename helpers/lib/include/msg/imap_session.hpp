#pragma once

#include "msg/credentials.hpp"
#include "msg/line_channel.hpp"
#include "msg/probe_options.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace msg {

// One IMAP server response: its line, or lines joined where a literal {N}
// interrupted it; the literals' bytes are kept apart, their markers stay.
struct imap_response {
    std::string text;
    std::vector<std::string> literals;

    // Bytes held, text and literals together.
    std::size_t size() const;

    // For "* 3 EXPUNGE" "EXPUNGE", for "* SEARCH 7" "SEARCH": upper-cased.
    std::string untagged_keyword() const;
};

// How an IMAP command ended: its tagged status, or a continuation request.
struct imap_reply {
    std::string status;                  // OK, NO or BAD; empty for a continuation request
    std::string text;                    // after the status: "[SERVERBUG] Internal error ..."
    std::vector<imap_response> untagged; // what came before, in order
    bool continuation = false;           // "+": the server awaits the literal announced

    // The response code ("TRYCREATE", "APPENDUID"), upper-cased; empty without one.
    std::string code() const;
    // What follows the code inside the brackets ("1700000000 7").
    std::string code_arguments() const;
    // True if an untagged response with `keyword` (untagged_keyword) came.
    bool has_untagged(std::string_view keyword) const;
};

// One IMAP client session over a connected channel (msg-probe imap,
// mailflow): tags, untagged data, literals both ways, capabilities. Every
// failure is a check_failure (1 unless said otherwise); reasons quote the
// server through excerpt(), so the password of `login` never shows.
class imap_session {
public:
    // `login` (may be nullptr) is used by log_in and masked in reasons; it must outlive the session.
    imap_session(line_channel& channel, const credentials* login);

    // Greeting, CAPABILITY, and STARTTLS (refused after PREAUTH) with
    // CAPABILITY again when where.tls is starttls. True for PREAUTH.
    bool start(const probe_options& where);

    // LOGIN with the session's credentials, refused without sending them
    // when the server announces LOGINDISABLED; capabilities are refreshed.
    void log_in();

    // Reads the greeting; true for PREAUTH. Throws 1 for BYE or anything else.
    bool greeting();

    // Asks for the capabilities afresh (after TLS, RFC 3501 6.2.1, or LOGIN).
    void refresh_capabilities();

    // True if the last capability list named `capability` (upper case).
    bool offers(const std::string& capability) const { return capabilities_.count(capability) != 0; }

    // Sends `tag arguments` and awaits its tagged reply; `verb` alone names
    // the command in reasons and logs, so arguments never reach either.
    imap_reply command(const std::string& arguments, const std::string& verb);

    // `verb` with string arguments: quoted where RFC 3501 allows it, else
    // (8-bit text) as synchronizing literals sent once the server says "+".
    imap_reply command_with_strings(const std::string& verb, const std::vector<std::string_view>& arguments);

    // APPEND of `message` lines to `mailbox`, flagged \Seen so it never
    // shows as new mail to anyone who opens the probe mailbox.
    imap_reply append(const std::string& mailbox, const std::vector<std::string>& message);

    // The UIDs `UID SEARCH criteria` finds, in the server's order; throws 1 unless it is OK.
    std::vector<std::uint32_t> uid_search(const std::string& criteria);

    // Flags `own` (this run's probe messages, described as `own_name` in
    // reasons) \Deleted together with, where the server has WITHIN (RFC
    // 5032), up to 100 probe messages older than ten minutes that earlier
    // runs left behind, and expunges them (UID EXPUNGE; plain EXPUNGE
    // without UIDPLUS). `mailbox` must be selected. Returns how many
    // leftovers went; nothing is sent when there is nothing to remove.
    // Throws 1 if the server refuses or reports nothing expunged.
    std::size_t remove_probe_messages(const std::vector<std::uint32_t>& own, const std::string& own_name,
                                      const std::string& mailbox);

    // Throws 1 unless `result` is a tagged OK; `step` names what was refused.
    void expect_ok(const imap_reply& result, const std::string& step) const;

    // Server text for a reason: the password masked, then made printable and short.
    std::string excerpt(std::string_view text) const;

    // Throws check_failure 1 with `reason`.
    [[noreturn]] static void fail(const std::string& reason);

private:
    std::string next_tag();
    imap_response read_response(const std::string& what);
    imap_reply await(const std::string& tag, const std::string& verb, bool literal_pending = false);
    void note_untagged(const imap_response& item, const std::string& verb);
    void note_capabilities(std::string_view text);
    void replace_capabilities(std::string_view list);

    line_channel& channel_;
    const credentials* login_;
    unsigned tags_used_ = 0;
    std::set<std::string> capabilities_;
};

// An IMAP nz-number (a UID): 1 to 4294967295, or nullopt.
std::optional<std::uint32_t> parse_imap_uid(std::string_view text);

// True if RFC 3501 lets `text` be a quoted string: 7-bit, without CR, LF or NUL.
bool imap_quotable(std::string_view text);

// `text` as an IMAP quoted string, '"' and '\' escaped.
std::string imap_quoted(std::string_view text);

} // namespace msg
