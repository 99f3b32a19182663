#pragma once

#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace msg {

// OCF exit codes, as Pacemaker reads them from agents and from our helpers.
// Keep in sync with ocf-returncodes and Pacemaker's enum ocf_exitcode.
enum class ocf_code : int {
    success = 0,
    err_generic = 1,
    err_args = 2,
    err_unimplemented = 3,
    err_perm = 4,
    err_installed = 5,
    err_configured = 6,
    not_running = 7,
    // Pacemaker 2.0.5+: shown to the operator, never triggers recovery.
    degraded = 190,
};

// The result of one check: an OCF code plus the one line an operator reads
// through ocf_exit_reason. A healthy result has an empty reason.
class outcome {
public:
    outcome() = default;
    outcome(ocf_code code, std::string reason) : code_(code), reason_(std::move(reason)) {}

    static outcome ok() { return {}; }
    static outcome failed(std::string reason) { return {ocf_code::err_generic, std::move(reason)}; }
    static outcome not_running(std::string reason) { return {ocf_code::not_running, std::move(reason)}; }
    static outcome misconfigured(std::string reason) { return {ocf_code::err_configured, std::move(reason)}; }
    static outcome degraded(std::string reason) { return {ocf_code::degraded, std::move(reason)}; }

    ocf_code code() const { return code_; }
    const std::string& reason() const { return reason_; }
    bool healthy() const { return code_ == ocf_code::success; }
    int exit_status() const { return static_cast<int>(code_); }

    // Of two results, the one that matters more to Pacemaker: any failure
    // outranks a degradation, which outranks success.
    static const outcome& worse(const outcome& a, const outcome& b);

private:
    ocf_code code_ = ocf_code::success;
    std::string reason_;
};

// One check's result among several run in one call, with the words that
// name the check in a reason: "IMAP 127.0.0.1:143".
struct labelled_outcome {
    std::string label;
    outcome result;
};

// Several checks as one result, the way an agent reports them: the first
// failure in their order ("LABEL: reason"); else every degradation, joined
// with "; "; else success.
outcome combined(const std::vector<labelled_outcome>& results);

// Thrown inside a check when it cannot go on; caught once, at the check's
// edge, and turned into an outcome. Never escapes a helper's main.
class check_failure : public std::exception {
public:
    explicit check_failure(outcome result) : result_(std::move(result)) {}
    const outcome& result() const { return result_; }
    const char* what() const noexcept override { return result_.reason().c_str(); }

private:
    outcome result_;
};

// What `check` returns; a check_failure it throws becomes its outcome, any
// other exception an OCF_ERR_GENERIC with its message: the check's edge.
outcome outcome_of(const std::function<outcome()>& check);

} // namespace msg
