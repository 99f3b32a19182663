#include "msg/dialogue.hpp"

#include "msg/tls.hpp"

#include <optional>
#include <string>

namespace msg {

outcome run_dialogue(const probe_options& where, std::uint16_t default_port, const deadline& until,
                     std::string_view farewell, const std::function<outcome(line_channel&)>& converse)
{
    try {
        line_channel channel(until);
        channel.connect(where, default_port);
        try {
            return converse(channel);
        } catch (const check_failure&) {
            // The server answered but not as required: say goodbye, so its
            // log shows a clean end rather than a lost connection. Not
            // waiting for the reply keeps the failure as fast as it was;
            // a channel already closed by a stall makes this a no-op.
            try {
                channel.write_line(farewell, farewell);
            } catch (const check_failure&) {
            }
            throw;
        }
    } catch (const check_failure& failure) {
        return failure.result();
    }
}

outcome run_login_dialogue(const probe_options& where, std::uint16_t default_port, const deadline& until,
                           std::string_view farewell, const std::filesystem::path& credentials_file,
                           const std::function<outcome(line_channel&, const credentials*)>& converse)
{
    std::optional<credentials> login;
    try {
        if (!credentials_file.empty())
            login.emplace(read_credentials_file(credentials_file));
    } catch (const check_failure& failure) {
        return failure.result();
    }
    const credentials* who = login ? &*login : nullptr;
    const outcome result = run_dialogue(where, default_port, until, farewell,
                                        [&](line_channel& channel) { return converse(channel, who); });
    if (who == nullptr || result.reason().empty())
        return result;
    return {result.code(), who->redact(result.reason())};
}

outcome certificate_outcome(const line_channel& channel, int warn_days)
{
    if (!channel.peer_certificate())
        return outcome::ok();
    return check_certificate_expiry(*channel.peer_certificate(), warn_days);
}

void require_single_line(std::string_view value, std::string_view option)
{
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        throw check_failure(outcome(ocf_code::err_args, std::string(option) + " must not contain CR, LF or NUL"));
}

} // namespace msg
