#include "msg/outcome.hpp"

namespace msg {

namespace {

// Pacemaker acts on failures and only displays degradations, so a failure of
// any kind must win when several checks are folded into one result.
int severity(ocf_code code)
{
    switch (code) {
    case ocf_code::success:
        return 0;
    case ocf_code::degraded:
        return 1;
    default:
        return 2;
    }
}

} // namespace

const outcome& outcome::worse(const outcome& a, const outcome& b)
{
    return severity(b.code()) > severity(a.code()) ? b : a;
}

outcome combined(const std::vector<labelled_outcome>& results)
{
    std::string warnings;
    for (const labelled_outcome& one : results) {
        if (severity(one.result.code()) == 2)
            return {one.result.code(), one.label + ": " + one.result.reason()};
        if (one.result.code() == ocf_code::degraded)
            warnings += (warnings.empty() ? "" : "; ") + one.label + ": " + one.result.reason();
    }
    return warnings.empty() ? outcome::ok() : outcome::degraded(warnings);
}

outcome outcome_of(const std::function<outcome()>& check)
{
    try {
        return check();
    } catch (const check_failure& failure) {
        return failure.result();
    } catch (const std::exception& error) {
        return outcome::failed(error.what());
    } catch (...) {
        return outcome::failed("unexpected internal error");
    }
}

} // namespace msg
