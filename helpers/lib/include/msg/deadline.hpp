#pragma once

#include <algorithm>
#include <chrono>

namespace msg {

using steady_clock = std::chrono::steady_clock;

// One point in time that bounds a whole operation: every step of a check
// asks it how long is left instead of carrying its own timeout.
class deadline {
public:
    explicit deadline(steady_clock::time_point at) : at_(at), budget_(at - steady_clock::now()) {}

    static deadline after(steady_clock::duration budget) { return deadline(steady_clock::now() + budget, budget); }

    steady_clock::time_point at() const { return at_; }
    bool passed() const { return steady_clock::now() >= at_; }

    // Time left, never negative.
    steady_clock::duration remaining() const
    {
        auto left = at_ - steady_clock::now();
        return left > steady_clock::duration::zero() ? left : steady_clock::duration::zero();
    }

    std::chrono::milliseconds remaining_ms() const
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(remaining());
    }

    // The whole time allowed when the deadline was set. Reasons quote it:
    // the operator reads the limit they configured, not what was left of it
    // a moment later on a busy machine.
    std::chrono::milliseconds budget_ms() const
    {
        return std::max(std::chrono::round<std::chrono::milliseconds>(budget_), std::chrono::milliseconds::zero());
    }

    // A deadline that ends `margin` earlier, for a sub-step that must leave
    // time for the caller to report.
    deadline shortened_by(steady_clock::duration margin) const { return deadline(at_ - margin, budget_ - margin); }

private:
    deadline(steady_clock::time_point at, steady_clock::duration budget) : at_(at), budget_(budget) {}

    steady_clock::time_point at_;
    steady_clock::duration budget_;
};

} // namespace msg
