#include "msg/probe_options.hpp"

namespace msg {

std::string describe_target(const probe_options& options, std::uint16_t default_port)
{
    if (!options.socket_path.empty())
        return options.socket_path;
    const std::string port = std::to_string(effective_port(options, default_port));
    // An IPv6 literal needs brackets, or its last group reads as the port.
    if (options.host.find(':') != std::string::npos)
        return "[" + options.host + "]:" + port;
    return options.host + ":" + port;
}

} // namespace msg
