#include "msg/node_status.hpp"

#include "msg/at_once.hpp"
#include "msg/deadline.hpp"
#include "msg/ldap_probe_process.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <functional>
#include <type_traits>

namespace msg {

namespace {

using std::chrono::milliseconds;

milliseconds since(steady_clock::time_point start)
{
    return std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
}

// Runs one check to its end; its deadline comes from its own options.
// LDAP runs in `ldap_probe`, a child, so msg-status never loads libldap.
status_result run_one(const status_check& check, const std::filesystem::path& ldap_probe)
{
    status_result row{check.service, check.name, check.protocol, outcome::ok(), milliseconds::zero()};
    const steady_clock::time_point started = steady_clock::now();
    row.result = outcome_of([&] {
        return std::visit(
            [&](const auto& options) {
                using options_type = std::decay_t<decltype(options)>;
                if constexpr (std::is_same_v<options_type, smtp_options>) {
                    return check_smtp(options, deadline::after(options.where.time_limit));
                } else if constexpr (std::is_same_v<options_type, imap_options>) {
                    return check_imap(options, deadline::after(options.where.time_limit));
                } else if constexpr (std::is_same_v<options_type, pop3_options>) {
                    return check_pop3(options, deadline::after(options.where.time_limit));
                } else if constexpr (std::is_same_v<options_type, nntp_options>) {
                    return check_nntp(options, deadline::after(options.where.time_limit));
                } else if constexpr (std::is_same_v<options_type, ldap_options>) {
                    return run_ldap_probe(options, ldap_probe);
                } else {
                    const mailflow_result flow = check_mailflow(options, deadline::after(options.time_limit));
                    // What an operator wants to see for mail flow is the
                    // round trip, not how long logging in took besides.
                    if (flow.round_trip)
                        row.latency = *flow.round_trip;
                    return flow.result;
                }
            },
            check.probe);
    });
    if (row.latency == milliseconds::zero())
        row.latency = since(started);
    return row;
}

std::string json_string(std::string_view text)
{
    std::string out = "\"";
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (byte < 0x20 || byte == 0x7f) {
            std::array<char, 8> escaped{};
            std::snprintf(escaped.data(), escaped.size(), "\\u%04x", byte);
            out += escaped.data();
        } else {
            out.push_back(c);
        }
    }
    return out + "\"";
}

const outcome& worst(const std::vector<status_result>& results)
{
    static const outcome healthy;
    const outcome* found = &healthy;
    for (const auto& row : results)
        found = &outcome::worse(*found, row.result);
    return *found;
}

} // namespace

std::vector<status_result> run_status_checks(const std::vector<status_check>& checks,
                                             const std::filesystem::path& helper_dir)
{
    const std::filesystem::path ldap_probe = helper_dir / ldap_probe_name;
    std::vector<std::function<status_result()>> tasks;
    tasks.reserve(checks.size());
    for (const status_check& check : checks)
        tasks.emplace_back([&check, &ldap_probe] { return run_one(check, ldap_probe); });
    return run_at_once(tasks);
}

std::string_view status_state(ocf_code code)
{
    switch (code) {
    case ocf_code::success:
        return "ok";
    case ocf_code::degraded:
        return "degraded";
    case ocf_code::not_running:
        return "not running";
    default:
        return "failed";
    }
}

void write_status_table(std::ostream& out, const std::vector<status_result>& results)
{
    using row_cells = std::array<std::string, 5>;
    std::vector<row_cells> rows{{"SERVICE", "CHECK", "STATE", "LATENCY_MS", "REASON"}};
    for (const auto& row : results)
        rows.push_back({row.service, row.check, std::string(status_state(row.result.code())),
                        std::to_string(row.latency.count()), row.result.reason()});
    std::array<std::size_t, 4> widths{};
    for (const auto& cells : rows) {
        for (std::size_t column = 0; column < widths.size(); ++column)
            widths[column] = std::max(widths[column], cells[column].size());
    }
    for (const auto& cells : rows) {
        std::string line;
        for (std::size_t column = 0; column < widths.size(); ++column) {
            const std::string padding(widths[column] - cells[column].size(), ' ');
            // Numbers line up on the right, words on the left.
            line += column == 3 ? padding + cells[column] : cells[column] + padding;
            line += "  ";
        }
        line += cells[4];
        line.erase(line.find_last_not_of(' ') + 1);
        out << line << '\n';
    }
}

void write_status_json(std::ostream& out, const std::vector<status_result>& results, std::string_view node)
{
    // The node's state is the verdict's: ok, degraded or failed, as its exit code says.
    const outcome verdict = status_verdict(results);
    out << "{\"node\":" << json_string(node) << ",\"state\":" << json_string(status_state(verdict.code()))
        << ",\"exit_code\":" << verdict.exit_status() << ",\"checks\":[";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const status_result& row = results[i];
        out << (i == 0 ? "" : ",") << "{\"service\":" << json_string(row.service)
            << ",\"check\":" << json_string(row.check) << ",\"protocol\":" << json_string(row.protocol)
            << ",\"state\":" << json_string(status_state(row.result.code()))
            << ",\"exit_code\":" << row.result.exit_status() << ",\"latency_ms\":" << row.latency.count()
            << ",\"reason\":" << json_string(row.result.reason()) << "}";
    }
    out << "]}\n";
}

outcome status_verdict(const std::vector<status_result>& results)
{
    const outcome& verdict = worst(results);
    if (verdict.healthy())
        return outcome::ok();
    std::size_t count = 0;
    std::string named;
    for (const auto& row : results) {
        if (row.result.healthy())
            continue;
        ++count;
        named += (named.empty() ? "" : ", ") + row.service + "/" + row.check + " "
                 + std::string(status_state(row.result.code()));
    }
    const std::string reason
        = std::to_string(count) + " of " + std::to_string(results.size()) + " checks not ok: " + named;
    return verdict.code() == ocf_code::degraded ? outcome::degraded(reason) : outcome::failed(reason);
}

} // namespace msg
