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

} // namespace msg
