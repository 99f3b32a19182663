#include "msg/ldap_probe_process.hpp"

#include "msg/child_process.hpp"
#include "msg/deadline.hpp"

#include <chrono>

namespace msg {

namespace {

// Past the check's own deadline, how long the child has to report it
// before it is killed: it ends its own check on time and only needs to
// exit.
constexpr std::chrono::milliseconds report_grace{500};

// The child's last non-empty stderr line: its reason. libldap may warn
// before it; the helper writes its one reason line last.
std::string reason_line(const std::string& err)
{
    const std::string::size_type end = err.find_last_not_of("\r\n \t");
    if (end == std::string::npos)
        return {};
    const std::string::size_type newline = err.find_last_of('\n', end);
    const std::string::size_type start = newline == std::string::npos ? 0 : newline + 1;
    return err.substr(start, end + 1 - start);
}

bool is_ocf_code(int status)
{
    return (status >= 0 && status <= 7) || status == static_cast<int>(ocf_code::degraded);
}

} // namespace

std::vector<std::string> ldap_probe_arguments(const ldap_options& options)
{
    std::vector<std::string> args;
    const auto text = [&args](const char* name, const std::string& value) {
        if (!value.empty())
            args.push_back(std::string("--") + name + "=" + value);
    };
    const auto number = [&args](const char* name, auto value) {
        if (value != 0)
            args.push_back(std::string("--") + name + "=" + std::to_string(value));
    };
    const auto flag = [&args](const char* name, bool set) {
        if (set)
            args.push_back(std::string("--") + name);
    };
    text("uri", options.uri);
    flag("starttls", options.starttls);
    text("ca-file", options.ca_file);
    number("cert-warn-days", options.cert_warn_days);
    number("deadline-ms", options.time_limit.count());
    text("suffix", options.suffix);
    text("bind-dn", options.bind_dn);
    text("bind-password-file", options.bind_password_file.string());
    flag("sasl-external", options.sasl_external);
    text("probe-entry", options.probe_entry);
    text("write-probe-attr", options.write_probe_attribute);
    // check_ldap ignores the provider's settings without a provider, and
    // maxsize-bytes without db-dir; msg-probe-ldap's command line refuses them.
    if (!options.provider_uri.empty()) {
        text("provider-uri", options.provider_uri);
        flag("provider-starttls", options.provider_starttls);
        number("max-replication-lag-s", options.max_replication_lag.count());
        number("warn-replication-lag-s", options.warn_replication_lag.count());
    }
    text("db-dir", options.db_dir.string());
    number("maxsize-warn-percent", options.maxsize_warn_percent);
    if (!options.db_dir.empty())
        number("maxsize-bytes", options.maxsize_bytes);
    return args;
}

outcome run_ldap_probe(const ldap_options& options, const std::filesystem::path& probe)
{
    // check_ldap's own words; msg-probe-ldap's command line would say it as CLI11 does.
    if (const auto conflict = ldap_options_conflict(options))
        return {ocf_code::err_args, *conflict};
    child_command command;
    command.program = probe.string();
    command.args = ldap_probe_arguments(options);
    command.extra_env = ldap_probe_environment();
    command.max_output_bytes = 4096;
    const child_result run = run_child(command, deadline::after(options.time_limit + report_grace));
    if (!run.started) {
        const bool missing = !std::filesystem::exists(probe);
        return {missing ? ocf_code::err_installed : ocf_code::err_generic,
                "cannot run " + probe.string() + ": " + run.launch_error};
    }
    if (run.timed_out)
        return outcome::failed("LDAP check (" + probe.filename().string() + ") still running "
                               + std::to_string(report_grace.count()) + " ms past its deadline; killed");
    if (!run.exit_code)
        return outcome::failed("LDAP check (" + probe.filename().string() + ") " + run.describe_end());
    const int status = *run.exit_code;
    const std::string reason = reason_line(run.err);
    if (!is_ocf_code(status))
        return outcome::failed("LDAP check (" + probe.filename().string() + ") " + run.describe_end()
                               + (reason.empty() ? "" : ": " + reason));
    return {static_cast<ocf_code>(status), status == 0 ? std::string() : reason};
}

} // namespace msg
