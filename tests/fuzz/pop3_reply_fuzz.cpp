// msg::check_pop3 against a server that sends the fuzzer's bytes: greeting,
// +OK/-ERR status lines, the dot-stuffed multi-line CAPA reply, STLS, USER/
// PASS and the STAT reply.
// Input: byte 0 option bits (0 USER/PASS and STAT, 1 STLS), then what the server sends.
#include "fuzz_peer.hpp"

#include "msg/pop3.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    msg_fuzz::fuzz_reply_check(data, size, [](msg_fuzz::fuzz_run& run) {
        msg::pop3_options options;
        options.where = msg_fuzz::peer_endpoint(run.input.option(1), "pop3.fuzz.test");
        if (run.input.option(0))
            options.credentials_file = run.credentials();
        return msg::check_pop3(options, run.until);
    });
    return 0;
}
