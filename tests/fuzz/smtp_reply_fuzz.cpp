// msg::check_smtp (SMTP and LMTP) against a server that sends the fuzzer's
// bytes: banner, EHLO/LHLO replies and extensions, STARTTLS, the MAIL/RCPT
// transaction, multi-line replies of any length or shape.
// Input: byte 0 option bits (0 LMTP, 1 transaction, 2 required extensions,
// 3 STARTTLS), then what the server sends.
#include "fuzz_peer.hpp"

#include "msg/smtp.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    msg_fuzz::fuzz_reply_check(data, size, [](msg_fuzz::fuzz_run& run) {
        msg::smtp_options options;
        options.where = msg_fuzz::peer_endpoint(run.input.option(3), "mail.fuzz.test");
        options.lmtp = run.input.option(0);
        options.helo_name = "fuzz.test";
        options.transaction = run.input.option(1);
        if (run.input.option(2))
            options.required_extensions = {"SIZE", "auth plain", "8BITMIME"};
        return msg::check_smtp(options, run.until);
    });
    return 0;
}
