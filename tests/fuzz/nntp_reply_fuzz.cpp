// msg::check_nntp against a server that sends the fuzzer's bytes: greeting
// (200/201, INN's 400 while throttled), status lines, the dot-terminated,
// dot-stuffed CAPABILITIES and ARTICLE blocks, MODE READER, STARTTLS,
// AUTHINFO, GROUP and DATE replies, POST.
// Input: byte 0 option bits (0 AUTHINFO, 1 GROUP, 2 round trip (implies
// GROUP), 3 STARTTLS), then what the server sends.
#include "fuzz_peer.hpp"

#include "msg/nntp.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    msg_fuzz::fuzz_reply_check(data, size, [](msg_fuzz::fuzz_run& run) {
        msg::nntp_options options;
        options.where = msg_fuzz::peer_endpoint(run.input.option(3), "news.fuzz.test");
        if (run.input.option(0))
            options.credentials_file = run.credentials();
        if (run.input.option(1) || run.input.option(2))
            options.group = "local.probe";
        options.round_trip = run.input.option(2);
        return msg::check_nntp(options, run.until);
    });
    return 0;
}
