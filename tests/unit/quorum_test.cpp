#include "msg/quorum.hpp"

#include <corosync/quorum.h>
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <thread>

using namespace std::chrono_literals;
using msg::cs_verdict;
using msg::deadline;
using msg::quorum_state;

namespace {

// Stands in for corosync: answers from scripted return codes.
class fake_source : public msg::quorum_source {
public:
    std::deque<cs_error_t> init_codes{CS_OK};
    std::uint32_t quorum_type = QUORUM_SET;
    std::deque<cs_error_t> getquorate_codes{CS_OK};
    int quorate = 1;
    bool corosync_process = false;
    std::chrono::milliseconds getquorate_hang{0};

    std::atomic<int> init_calls{0};
    std::atomic<int> getquorate_calls{0};
    std::atomic<int> finalize_calls{0};

    cs_error_t initialize(std::uint32_t& type) override
    {
        ++init_calls;
        const cs_error_t rc = next(init_codes);
        if (rc == CS_OK) {
            type = quorum_type;
        }
        return rc;
    }
    cs_error_t getquorate(int& value) override
    {
        ++getquorate_calls;
        std::this_thread::sleep_for(getquorate_hang);
        value = quorate;
        return next(getquorate_codes);
    }
    void finalize() override { ++finalize_calls; }
    bool corosync_running() override { return corosync_process; }

private:
    // The last scripted code repeats forever.
    static cs_error_t next(std::deque<cs_error_t>& codes)
    {
        const cs_error_t rc = codes.front();
        if (codes.size() > 1) {
            codes.pop_front();
        }
        return rc;
    }
};

} // namespace

TEST(CsErrorMapping, ClassifiesEveryCodeOnce)
{
    EXPECT_EQ(msg::classify_cs_error(CS_OK), cs_verdict::ok);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_TRY_AGAIN), cs_verdict::retry);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_QUEUE_FULL), cs_verdict::retry);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_LIBRARY), cs_verdict::unreachable);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_NOT_EXIST), cs_verdict::unreachable);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_ACCESS), cs_verdict::failed);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_SECURITY), cs_verdict::failed);
    EXPECT_EQ(msg::classify_cs_error(CS_ERR_BAD_HANDLE), cs_verdict::failed);
    EXPECT_EQ(msg::classify_cs_error(static_cast<cs_error_t>(77)), cs_verdict::failed);
}

TEST(CsErrorMapping, NamesCodes)
{
    EXPECT_EQ(msg::cs_error_name(CS_ERR_TRY_AGAIN), "CS_ERR_TRY_AGAIN");
    EXPECT_EQ(msg::cs_error_name(CS_ERR_LIBRARY), "CS_ERR_LIBRARY");
    EXPECT_EQ(msg::cs_error_name(static_cast<cs_error_t>(77)), "cs_error_t 77");
}

TEST(QuorumQuery, QuorateNode)
{
    fake_source source;
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::quorate) << status.detail;
    EXPECT_EQ(source.finalize_calls, 1);
}

TEST(QuorumQuery, InquorateNode)
{
    fake_source source;
    source.quorate = 0;
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::not_quorate);
    EXPECT_EQ(source.finalize_calls, 1);
}

TEST(QuorumQuery, QuorumNotConfiguredIsAnError)
{
    fake_source source;
    source.quorum_type = QUORUM_FREE;
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_EQ(status.detail, "corosync quorum is not configured");
    EXPECT_EQ(source.getquorate_calls, 0);
    EXPECT_EQ(source.finalize_calls, 1);
}

TEST(QuorumQuery, BusyCorosyncIsAskedAgain)
{
    fake_source source;
    source.init_codes = {CS_ERR_TRY_AGAIN, CS_ERR_TRY_AGAIN, CS_OK};
    source.getquorate_codes = {CS_ERR_QUEUE_FULL, CS_OK};
    const auto status = msg::query_quorum(source, deadline::after(5s));
    EXPECT_EQ(status.state, quorum_state::quorate) << status.detail;
    EXPECT_EQ(source.init_calls, 3);
    EXPECT_EQ(source.getquorate_calls, 2);
}

TEST(QuorumQuery, RetriesAreBoundedByTheDeadline)
{
    fake_source source;
    source.init_codes = {CS_ERR_TRY_AGAIN};
    const auto started = std::chrono::steady_clock::now();
    const auto status = msg::query_quorum(source, deadline::after(400ms));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_NE(status.detail.find("CS_ERR_TRY_AGAIN"), std::string::npos) << status.detail;
    EXPECT_LT(elapsed, 1s);  // 400 ms plus scheduling slack on a shared machine
    EXPECT_GE(source.init_calls, 2);
    EXPECT_EQ(source.finalize_calls, 0);
}

TEST(QuorumQuery, RetriesAreBoundedInNumber)
{
    fake_source source;
    source.getquorate_codes = {CS_ERR_TRY_AGAIN};
    const auto status = msg::query_quorum(source, deadline::after(60s));
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_EQ(source.getquorate_calls, 10);
    EXPECT_EQ(status.detail, "quorum_getquorate failed: CS_ERR_TRY_AGAIN after 10 attempts");
    EXPECT_EQ(source.finalize_calls, 1);
}

TEST(QuorumQuery, NoCorosyncMeansStandalone)
{
    fake_source source;
    source.init_codes = {CS_ERR_LIBRARY};
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::no_cluster);
    EXPECT_EQ(source.init_calls, 1);
}

TEST(QuorumQuery, UnreachableButRunningCorosyncIsNeverStandalone)
{
    fake_source source;
    source.init_codes = {CS_ERR_LIBRARY};
    source.corosync_process = true;
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_NE(status.detail.find("does not answer"), std::string::npos) << status.detail;
}

TEST(QuorumQuery, PermissionDeniedIsAnError)
{
    fake_source source;
    source.init_codes = {CS_ERR_ACCESS};
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_EQ(status.detail, "quorum_initialize failed: CS_ERR_ACCESS");
}

TEST(QuorumQuery, LostConnectionAfterInitIsAnErrorNotStandalone)
{
    fake_source source;
    source.getquorate_codes = {CS_ERR_LIBRARY};
    const auto status = msg::query_quorum(source, deadline::after(2s));
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_EQ(source.finalize_calls, 1);
}

TEST(QuorumCheck, HangingCorosyncEndsAtTheDeadline)
{
    auto source = std::make_shared<fake_source>();
    source->getquorate_hang = 3s;
    const auto started = std::chrono::steady_clock::now();
    const auto status = msg::check_quorum(source, deadline::after(200ms));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(status.state, quorum_state::error);
    EXPECT_EQ(status.detail, "corosync did not answer the quorum query before the deadline");
    EXPECT_LT(elapsed, 1s);  // far below the 3 s hang
}

TEST(QuorumCheck, AnswerWithinTheDeadlineIsReturned)
{
    auto source = std::make_shared<fake_source>();
    source->quorate = 0;
    EXPECT_EQ(msg::check_quorum(source, deadline::after(2s)).state, quorum_state::not_quorate);
}

TEST(QuorumCheck, LocalCorosyncOrStandalone)
{
    // The real libquorum in this host's namespaces: without a corosync here
    // the answer must be "standalone", with one a definite quorum answer.
    // Test clusters on this host start and stop corosync at any time, so an
    // observation counts only when corosync was (or was not) running both
    // before and after the query; a few tries find a quiet moment.
    std::string last;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (attempt > 0) {
            std::this_thread::sleep_for(500ms);
        }
        const bool before = msg::corosync_quorum_source()->corosync_running();
        const auto status = msg::check_quorum(msg::corosync_quorum_source(), deadline::after(5s));
        const bool after = msg::corosync_quorum_source()->corosync_running();
        if (before != after) {
            continue;
        }
        const bool right = before ? status.state == quorum_state::quorate || status.state == quorum_state::not_quorate
                                  : status.state == quorum_state::no_cluster;
        if (right) {
            SUCCEED();
            return;
        }
        last = std::string(before ? "corosync running: " : "no corosync: ") + status.detail;
    }
    ADD_FAILURE() << "no consistent quorum answer in 5 tries; last: " << last;
}

TEST(QuorumCheck, NoCorosyncInOurNetworkNamespaceIsStandalone)
{
    // libqb's IPC sockets are abstract unix sockets, scoped to a network
    // namespace: in a fresh one no corosync is reachable, and any corosync
    // process on this host belongs to another namespace. This is the real
    // libquorum path of a node without a cluster, whatever runs on the host.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::unshare(CLONE_NEWNET) != 0) {
            ::_exit(100);
        }
        const auto status = msg::check_quorum(msg::corosync_quorum_source(), deadline::after(5s));
        ::_exit(static_cast<int>(status.state));
    }
    int wait_status = 0;
    ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
    ASSERT_TRUE(WIFEXITED(wait_status));
    ASSERT_NE(WEXITSTATUS(wait_status), 100) << "unshare(CLONE_NEWNET) failed: the test needs root";
    EXPECT_EQ(WEXITSTATUS(wait_status), static_cast<int>(quorum_state::no_cluster));
}

TEST(QuorumPolicy, ProceedsOnlyWhenQuorateOrStandalone)
{
    EXPECT_TRUE(msg::quorum_policy({quorum_state::quorate, "node is quorate"}, "postfix").healthy());
    EXPECT_TRUE(msg::quorum_policy({quorum_state::no_cluster, "corosync is not running"}, "postfix").healthy());

    const auto inquorate = msg::quorum_policy({quorum_state::not_quorate, "node is not quorate"}, "postfix");
    EXPECT_EQ(inquorate.code(), msg::ocf_code::err_generic);
    EXPECT_EQ(inquorate.reason(), "node is not quorate: refusing to recover postfix store");

    const auto broken = msg::quorum_policy({quorum_state::error, "corosync quorum is not configured"}, "dovecot");
    EXPECT_EQ(broken.code(), msg::ocf_code::err_generic);
    EXPECT_EQ(broken.reason(), "corosync quorum is not configured: refusing to recover dovecot store");
}
