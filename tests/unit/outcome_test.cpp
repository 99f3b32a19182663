// How several checks' results become the one result an agent reports.
#include "msg/at_once.hpp"
#include "msg/outcome.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using msg::combined;
using msg::ocf_code;
using msg::outcome;

TEST(CombinedOutcome, AllHealthyIsSuccessWithoutAReason)
{
    const outcome result = combined({{"IMAP 127.0.0.1:143", outcome::ok()}, {"POP3 127.0.0.1:110", outcome::ok()}});
    EXPECT_TRUE(result.healthy());
    EXPECT_EQ(result.reason(), "");
    EXPECT_TRUE(combined({}).healthy());
}

TEST(CombinedOutcome, TheFirstFailureInOrderWinsWithItsLabel)
{
    const outcome result = combined({{"IMAP 127.0.0.1:143", outcome::degraded("certificate expires in 3 days")},
                                     {"LMTP /run/lmtp", outcome::not_running("nothing listening")},
                                     {"POP3 127.0.0.1:110", outcome::failed("no greeting")}});
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(), "LMTP /run/lmtp: nothing listening");
}

TEST(CombinedOutcome, WarningsAreJoinedWhenNothingFailed)
{
    const outcome result = combined({{"IMAP 127.0.0.1:993", outcome::degraded("expires in 3 days")},
                                     {"LMTP /run/lmtp", outcome::ok()},
                                     {"POP3 127.0.0.1:995", outcome::degraded("expires in 5 days")}});
    EXPECT_EQ(result.code(), ocf_code::degraded);
    EXPECT_EQ(result.reason(), "IMAP 127.0.0.1:993: expires in 3 days; POP3 127.0.0.1:995: expires in 5 days");
}

TEST(OutcomeOf, ExceptionsBecomeOutcomes)
{
    EXPECT_EQ(msg::outcome_of([] { return outcome::degraded("slow"); }).reason(), "slow");
    const outcome thrown = msg::outcome_of([]() -> outcome { throw msg::check_failure(outcome::misconfigured("bad")); });
    EXPECT_EQ(thrown.code(), ocf_code::err_configured);
    EXPECT_EQ(thrown.reason(), "bad");
    const outcome other = msg::outcome_of([]() -> outcome { throw std::runtime_error("boom"); });
    EXPECT_EQ(other.code(), ocf_code::err_generic);
    EXPECT_EQ(other.reason(), "boom");
}

TEST(RunAtOnce, ResultsComeBackInTheTasksOrderWhileTheyRunTogether)
{
    // Each task waits until all have started: run one after another, the
    // first would wait for ever, so this only ends if they run together.
    std::atomic<int> started{0};
    const auto task = [&started](int value) {
        return [&started, value] {
            ++started;
            while (started.load() < 3)
                std::this_thread::yield();
            return value;
        };
    };
    const std::vector<std::function<int()>> tasks{task(1), task(2), task(3)};
    EXPECT_EQ(msg::run_at_once(tasks), (std::vector<int>{1, 2, 3}));
}

} // namespace
