#include "msg/exit_report.hpp"

#include "msg/log.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <exception>
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

int report_exceptions(const std::function<int()>& body)
{
    int status = 0;
    const outcome thrown = outcome_of([&body, &status] {
        status = body();
        return outcome::ok();
    });
    return thrown.healthy() ? status : report_exit(thrown);
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      const std::function<std::string(const std::exception&)>& describe)
{
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& help) {
        return app.exit(help);
    } catch (const CLI::ParseError& error) {
        return report_exit({ocf_code::err_args, describe ? describe(error) : error.what()});
    }
    return std::nullopt;
}

} // namespace msg
