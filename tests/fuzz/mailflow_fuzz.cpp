// msg::check_mailflow against two servers that send the fuzzer's bytes: the
// mailbox (IMAP: login, SELECT, leftover search and removal, NOOP polling)
// and the submission server (SMTP: EHLO, STARTTLS, AUTH PLAIN or LOGIN,
// MAIL, RCPT, DATA). The only probe that sends a password over SMTP, base64
// encoded: neither form may come back in a reason.
// Input: byte 0 option bits (0 SMTP AUTH, 1 IMAP STARTTLS, 2 SMTP
// STARTTLS), then what the IMAP server sends, then submission_marker and
// what the SMTP server sends.
#include "fuzz_peer.hpp"

#include "msg/mailflow.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view submission_marker = "\n=== submission ===\n";

std::string base64(std::string_view bytes)
{
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(written));
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    static msg_fuzz::scripted_peer mailbox;
    static msg_fuzz::scripted_peer submission;
    // What AUTH PLAIN and AUTH LOGIN send for the password.
    static const std::string plain_secret = base64(std::string("\0fuzzer\0", 8) + std::string(msg_fuzz::fuzz_password));
    static const std::string login_secret = base64(msg_fuzz::fuzz_password);

    const msg_fuzz::fuzz_input input = msg_fuzz::split_input(data, size);
    const std::string_view all = input.server_bytes;
    const std::size_t split = all.find(submission_marker);
    const std::string_view imap_bytes = all.substr(0, split);
    const std::string_view smtp_bytes
        = split == std::string_view::npos ? std::string_view() : all.substr(split + submission_marker.size());

    msg::mailflow_options options;
    options.mailbox_server = msg_fuzz::endpoint_of(mailbox, input.option(1), "imap.fuzz.test");
    options.submission = msg_fuzz::endpoint_of(submission, input.option(2), "smtp.fuzz.test");
    options.mailbox_credentials_file = msg_fuzz::credentials_file();
    if (input.option(0))
        options.submission_credentials_file = msg_fuzz::credentials_file();
    options.probe_address = "probe@fuzz.test";
    options.helo_name = "fuzz.test";
    // Polling ends when the IMAP bytes do; no need to pause between looks.
    options.poll_interval = std::chrono::milliseconds(1);
    options.time_limit = std::chrono::milliseconds(msg_fuzz::fuzz_time_limit_ms);

    const msg::deadline until = msg::deadline::after(options.time_limit);
    const msg::outcome result = mailbox.converse(imap_bytes, [&] {
        return submission.converse(smtp_bytes, [&] { return msg::check_mailflow(options, until).result; });
    });
    msg_fuzz::require_sound_outcome(result, {msg::ocf_code::success, msg::ocf_code::err_generic}, true);
    msg_fuzz::require_no_deadline_wait(until);
    // Only the submission server is sent the base64 forms; text the IMAP
    // server made up itself is not the probe's leak.
    for (const std::string& secret : {plain_secret, login_secret}) {
        if (input.option(0) && imap_bytes.find(secret) == std::string_view::npos)
            msg_fuzz::require(result.reason().find(secret) == std::string::npos,
                              "reason holds the base64 password of AUTH PLAIN or LOGIN");
    }
    return 0;
}
