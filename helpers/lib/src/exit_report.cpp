#include "msg/exit_report.hpp"

#include "msg/log.hpp"

#include <algorithm>
#include <iostream>

namespace msg {

std::string one_line(std::string text)
{
    std::replace(text.begin(), text.end(), '\n', ' ');
    std::replace(text.begin(), text.end(), '\r', ' ');
    return text;
}

int report_exit(const outcome& result)
{
    if (result.healthy())
        return 0;
    std::string reason = one_line(result.reason());
    if (reason.empty())
        reason = "check failed without a reason";
    if (result.code() == ocf_code::degraded)
        log_warning(reason);
    else
        log_error(reason);
    std::cerr << reason << std::endl;
    return result.exit_status();
}

} // namespace msg
