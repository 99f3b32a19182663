// msg::parse_status_config, msg-status's configuration grammar: sections,
// continuation lines, quoted words with escapes, endpoints, numbers with
// ranges, every protocol's options. Any text is either a list of checks
// or one "ORIGIN:LINE: what is wrong" refusal (6); nothing else escapes.
// Input: the configuration text.
#include "fuzz_peer.hpp"

#include "msg/status_config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using msg_fuzz::require;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::string origin = "fuzz.conf";
    try {
        const std::vector<msg::status_check> checks = msg::parse_status_config(text, origin);
        require(!checks.empty(), "a configuration without checks accepted");
        const auto& protocols = msg::status_protocols();
        for (const auto& check : checks) {
            require(!check.service.empty() && !check.name.empty(), "a check without service or name");
            require(std::find(protocols.begin(), protocols.end(), check.protocol) != protocols.end(),
                    "a check of an unknown protocol");
        }
    } catch (const msg::check_failure& failure) {
        const msg::outcome& refusal = failure.result();
        require(refusal.code() == msg::ocf_code::err_configured, "a refusal other than 6 (misconfigured)");
        require(refusal.reason().rfind(origin + ":", 0) == 0, "a refusal that does not say where");
        // msg-status prints it as the one reason line.
        require(std::all_of(refusal.reason().begin(), refusal.reason().end(),
                            [](char c) { return c >= 0x20 && c < 0x7f; }),
                "a refusal that is not one line of printable ASCII");
    }
    return 0;
}
