// msg::check_imap against a server that sends the fuzzer's bytes: greeting
// (OK, PREAUTH, BYE), tagged and untagged responses, response codes,
// CAPABILITY in all its places, literals {N} of any announced length
// (absurd ones included), continuation requests, the APPEND/SEARCH/FETCH/
// EXPUNGE round trip. Tags are a1, a2, ... in the order commands are sent.
// Input: byte 0 option bits (0 LOGIN, 1 SELECT a mailbox, 2 round trip,
// 3 STARTTLS), then what the server sends.
#include "fuzz_peer.hpp"

#include "msg/imap.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    msg_fuzz::fuzz_reply_check(data, size, [](msg_fuzz::fuzz_run& run) {
        msg::imap_options options;
        options.where = msg_fuzz::peer_endpoint(run.input.option(3), "imap.fuzz.test");
        // Mailbox and round trip need a login; the login alone is bit 0.
        if (run.input.option(0) || run.input.option(1) || run.input.option(2))
            options.credentials_file = run.credentials();
        if (run.input.option(1))
            options.mailbox = "Probe";
        options.round_trip = run.input.option(2);
        return msg::check_imap(options, run.until);
    });
    return 0;
}
