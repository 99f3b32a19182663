#include "msg/probe_message.hpp"

#include "msg/outcome.hpp"

#include <openssl/rand.h>

#include <ctime>

namespace msg {

std::string random_token()
{
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw check_failure(outcome::failed("cannot draw a random token for the probe message"));
    static constexpr char hex[] = "0123456789abcdef";
    std::string token;
    for (const unsigned char byte : bytes) {
        token.push_back(hex[byte >> 4]);
        token.push_back(hex[byte & 0x0f]);
    }
    return token;
}

std::string rfc5322_date_now()
{
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char text[64];
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S %z", &local);
    return text;
}

std::string probe_message_id(std::string_view token)
{
    return "<msg-probe." + std::string(token) + probe_id_suffix;
}

std::vector<std::string> probe_message(std::string_view token, const probe_message_text& text)
{
    std::vector<std::string> lines{
        "From: msg-probe <msg-probe@msg-probe.invalid>",
        "To: " + text.to,
        "Date: " + rfc5322_date_now(),
        "Subject: " + text.subject + " " + std::string(token),
        "Message-ID: " + probe_message_id(token),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
    };
    lines.insert(lines.end(), text.body.begin(), text.body.end());
    lines.push_back("Token: " + std::string(token));
    return lines;
}

} // namespace msg
