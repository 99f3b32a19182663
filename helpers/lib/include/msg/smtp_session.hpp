#pragma once

#include "msg/credentials.hpp"
#include "msg/line_channel.hpp"
#include "msg/probe_options.hpp"
#include "msg/smtp.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

// One SMTP or LMTP client session over a connected channel: reply reading
// and the steps every dialogue with a mail server shares (msg-probe smtp,
// lmtp, mailflow). Every failure is a check_failure; reasons quote the
// server through excerpt(), so the password of `login` never shows.
class smtp_session {
public:
    // `login` (may be nullptr) is used by authenticate and masked in reasons; it must outlive the session.
    smtp_session(line_channel& channel, bool lmtp, const credentials* login = nullptr);

    // The next complete reply; `what` names it in reasons ("SMTP banner").
    // Throws 1 on a malformed reply or one of more than 128 lines.
    smtp_reply read_reply(const std::string& what);

    // Sends `line` and returns the reply; `verb` alone names the command in
    // reasons and logs, so arguments (addresses, credentials) reach neither.
    smtp_reply command(const std::string& line, const std::string& verb);

    // Throws 1 unless first <= reply.code <= last: "STEP rejected: REPLY"
    // for a 4xx/5xx, "unexpected reply to STEP: REPLY" otherwise.
    void expect(const smtp_reply& reply, int first, int last, const std::string& step) const;

    // Banner 220, EHLO/LHLO `helo_name` (empty: this host's name), then, when
    // where.tls is starttls, STARTTLS, the handshake and EHLO/LHLO again
    // (RFC 3207: what was learnt before TLS is void). Returns the extensions
    // the last EHLO/LHLO reply announced.
    std::vector<smtp_extension> open(const probe_options& where, const std::string& helo_name);

    // AUTH PLAIN (initial response), or AUTH LOGIN where PLAIN is not offered,
    // with the session's credentials. Throws 1 when neither is offered
    // ("over plaintext" says to use STARTTLS), when the server refuses (535
    // ...) or without credentials; the reason names the mechanism and the
    // user, never the password.
    void authenticate(const std::vector<smtp_extension>& offered);

    // Server text for a reason: the password masked (also the base64 forms
    // authenticate() sends), then made printable and at most max_chars long.
    std::string excerpt(std::string_view text, std::size_t max_chars = 200) const;

    // "SMTP" or "LMTP", as reasons and logs name the protocol.
    const std::string& protocol() const { return protocol_; }

private:
    line_channel& channel_;
    bool lmtp_;
    const credentials* login_;
    std::string protocol_;
};

// A reverse or forward path for MAIL FROM / RCPT TO: "<a@b>" as given, else wrapped.
std::string smtp_path(const std::string& address);

} // namespace msg
