#pragma once

#include "msg/outcome.hpp"
#include "msg/status_config.hpp"

#include <chrono>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

// What one configured check found on this node.
struct status_result {
    std::string service;
    std::string check;
    std::string protocol;
    outcome result;
    std::chrono::milliseconds latency; // how long the check took; for mailflow the round trip when measured
};

// Runs every check at once, each on its own thread and bounded by its own
// deadline (its options' time limit), and returns their results in the
// order of `checks`. Never throws for a check's sake: a check that throws
// is a failed result with what() as the reason. LDAP checks run
// helper_dir/msg-probe-ldap as a child (see run_ldap_probe): msg-status
// passes its own directory (own_helper_dir), tests the build's.
std::vector<status_result> run_status_checks(const std::vector<status_check>& checks,
                                             const std::filesystem::path& helper_dir);

// "ok" (0), "degraded" (190), "not running" (7) or "failed" (anything else).
std::string_view status_state(ocf_code code);

// A table, one row per result: SERVICE CHECK STATE LATENCY_MS REASON,
// columns padded to their widest cell.
void write_status_table(std::ostream& out, const std::vector<status_result>& results);

// One JSON object: {"node", "state", "exit_code", "checks": [{"service",
// "check", "protocol", "state", "exit_code", "latency_ms", "reason"}, ...]}
// with the node's "state" and "exit_code" those of status_verdict: ok (0),
// degraded (190) or failed (1).
void write_status_json(std::ostream& out, const std::vector<status_result>& results, std::string_view node);

// The node's verdict: ok when every check is; degraded (190) when the only
// trouble is degradation; failed (1) when any check failed or found
// nothing running. The reason counts and names the checks that are not ok.
outcome status_verdict(const std::vector<status_result>& results);

} // namespace msg
