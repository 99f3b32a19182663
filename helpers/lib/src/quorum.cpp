#include "msg/quorum.hpp"

#include "msg/process_identity.hpp"

#include <corosync/quorum.h>

#include <dirent.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace msg {

namespace {

// Like Pacemaker's cs_repeat: a busy corosync (CS_ERR_TRY_AGAIN while it
// syncs a membership change) is asked again, a bounded number of times.
constexpr int max_attempts = 10;
constexpr auto retry_step = std::chrono::milliseconds(50);

std::optional<std::string> net_namespace(const std::string& pid_dir)
{
    std::error_code ec;
    auto target = std::filesystem::read_symlink(pid_dir + "/ns/net", ec);
    if (ec) {
        return std::nullopt;
    }
    return target.string();
}

class corosync_source final : public quorum_source {
public:
    ~corosync_source() override { finalize(); }

    cs_error_t initialize(std::uint32_t& quorum_type) override
    {
        quorum_callbacks_t callbacks{};
        const cs_error_t rc = quorum_initialize(&handle_, &callbacks, &quorum_type);
        open_ = rc == CS_OK;
        return rc;
    }

    cs_error_t getquorate(int& quorate) override { return quorum_getquorate(handle_, &quorate); }

    void finalize() override
    {
        if (open_) {
            quorum_finalize(handle_);
            open_ = false;
        }
    }

    bool corosync_running() override
    {
        const auto own = net_namespace("/proc/self");
        DIR* proc = ::opendir("/proc");
        if (proc == nullptr) {
            // Cannot look: assume the worst, so recovery is refused.
            return true;
        }
        bool found = false;
        while (const dirent* entry = ::readdir(proc)) {
            const auto pid = parse_pid(entry->d_name);
            if (!pid) {
                continue;
            }
            const auto stat = read_proc_stat(*pid);
            if (!stat || stat->comm != "corosync" || stat->state == 'Z' || stat->state == 'X') {
                continue;
            }
            // A corosync of another network namespace (a test cluster's node
            // on this host) is not ours; one we cannot place counts as ours.
            const auto theirs = net_namespace("/proc/" + std::to_string(*pid));
            if (!own || !theirs || *own == *theirs) {
                found = true;
                break;
            }
        }
        ::closedir(proc);
        return found;
    }

private:
    quorum_handle_t handle_ = 0;
    bool open_ = false;
};

// Calls `call` until it stops answering "busy", the attempts run out or the
// deadline nears; returns its last code.
template <class Call>
cs_error_t with_retries(Call&& call, const deadline& limit, int& attempts)
{
    cs_error_t rc = CS_ERR_TRY_AGAIN;
    for (attempts = 1;; ++attempts) {
        rc = call();
        if (classify_cs_error(rc) != cs_verdict::retry || attempts >= max_attempts) {
            return rc;
        }
        const auto pause = std::min<steady_clock::duration>(retry_step * attempts, limit.remaining());
        if (pause <= steady_clock::duration::zero()) {
            return rc;
        }
        std::this_thread::sleep_for(pause);
    }
}

std::string busy_detail(const char* call, cs_error_t rc, int attempts)
{
    return std::string(call) + " failed: " + cs_error_name(rc) + " after " + std::to_string(attempts) + " attempts";
}

} // namespace

cs_verdict classify_cs_error(cs_error_t rc)
{
    switch (rc) {
    case CS_OK:
        return cs_verdict::ok;
    case CS_ERR_TRY_AGAIN:
    case CS_ERR_QUEUE_FULL:
        return cs_verdict::retry;
    // What libqb's failed IPC connect becomes (ECONNREFUSED, ENOTCONN ->
    // CS_ERR_LIBRARY; ENOENT -> CS_ERR_NOT_EXIST). Whether corosync is really
    // absent is decided separately, from the process table.
    case CS_ERR_LIBRARY:
    case CS_ERR_NOT_EXIST:
        return cs_verdict::unreachable;
    default:
        return cs_verdict::failed;
    }
}

std::string cs_error_name(cs_error_t rc)
{
    switch (rc) {
    case CS_OK: return "CS_OK";
    case CS_ERR_LIBRARY: return "CS_ERR_LIBRARY";
    case CS_ERR_VERSION: return "CS_ERR_VERSION";
    case CS_ERR_INIT: return "CS_ERR_INIT";
    case CS_ERR_TIMEOUT: return "CS_ERR_TIMEOUT";
    case CS_ERR_TRY_AGAIN: return "CS_ERR_TRY_AGAIN";
    case CS_ERR_INVALID_PARAM: return "CS_ERR_INVALID_PARAM";
    case CS_ERR_NO_MEMORY: return "CS_ERR_NO_MEMORY";
    case CS_ERR_BAD_HANDLE: return "CS_ERR_BAD_HANDLE";
    case CS_ERR_BUSY: return "CS_ERR_BUSY";
    case CS_ERR_ACCESS: return "CS_ERR_ACCESS";
    case CS_ERR_NOT_EXIST: return "CS_ERR_NOT_EXIST";
    case CS_ERR_NAME_TOO_LONG: return "CS_ERR_NAME_TOO_LONG";
    case CS_ERR_EXIST: return "CS_ERR_EXIST";
    case CS_ERR_NO_SPACE: return "CS_ERR_NO_SPACE";
    case CS_ERR_INTERRUPT: return "CS_ERR_INTERRUPT";
    case CS_ERR_NAME_NOT_FOUND: return "CS_ERR_NAME_NOT_FOUND";
    case CS_ERR_NO_RESOURCES: return "CS_ERR_NO_RESOURCES";
    case CS_ERR_NOT_SUPPORTED: return "CS_ERR_NOT_SUPPORTED";
    case CS_ERR_BAD_OPERATION: return "CS_ERR_BAD_OPERATION";
    case CS_ERR_FAILED_OPERATION: return "CS_ERR_FAILED_OPERATION";
    case CS_ERR_MESSAGE_ERROR: return "CS_ERR_MESSAGE_ERROR";
    case CS_ERR_QUEUE_FULL: return "CS_ERR_QUEUE_FULL";
    case CS_ERR_QUEUE_NOT_AVAILABLE: return "CS_ERR_QUEUE_NOT_AVAILABLE";
    case CS_ERR_BAD_FLAGS: return "CS_ERR_BAD_FLAGS";
    case CS_ERR_TOO_BIG: return "CS_ERR_TOO_BIG";
    case CS_ERR_NO_SECTIONS: return "CS_ERR_NO_SECTIONS";
    case CS_ERR_CONTEXT_NOT_FOUND: return "CS_ERR_CONTEXT_NOT_FOUND";
    case CS_ERR_TOO_MANY_GROUPS: return "CS_ERR_TOO_MANY_GROUPS";
    case CS_ERR_SECURITY: return "CS_ERR_SECURITY";
    }
    return "cs_error_t " + std::to_string(static_cast<int>(rc));
}

std::shared_ptr<quorum_source> corosync_quorum_source()
{
    return std::make_shared<corosync_source>();
}

quorum_status query_quorum(quorum_source& source, const deadline& limit)
{
    int attempts = 0;
    std::uint32_t quorum_type = QUORUM_FREE;
    const cs_error_t init_rc = with_retries([&] { return source.initialize(quorum_type); }, limit, attempts);
    switch (classify_cs_error(init_rc)) {
    case cs_verdict::ok:
        break;
    case cs_verdict::unreachable:
        if (source.corosync_running()) {
            return {quorum_state::error,
                    "corosync is running but its quorum service does not answer (" + cs_error_name(init_rc) + ")"};
        }
        return {quorum_state::no_cluster, "corosync is not running on this node"};
    case cs_verdict::retry:
        return {quorum_state::error, busy_detail("quorum_initialize", init_rc, attempts)};
    case cs_verdict::failed:
        return {quorum_state::error, "quorum_initialize failed: " + cs_error_name(init_rc)};
    }

    quorum_status status;
    if (quorum_type != QUORUM_SET) {
        status = {quorum_state::error, "corosync quorum is not configured"};
    } else {
        int quorate = 0;
        const cs_error_t rc = with_retries([&] { return source.getquorate(quorate); }, limit, attempts);
        switch (classify_cs_error(rc)) {
        case cs_verdict::ok:
            status = quorate != 0 ? quorum_status{quorum_state::quorate, "node is quorate"}
                                  : quorum_status{quorum_state::not_quorate, "node is not quorate"};
            break;
        case cs_verdict::retry:
            status = {quorum_state::error, busy_detail("quorum_getquorate", rc, attempts)};
            break;
        case cs_verdict::unreachable:
        case cs_verdict::failed:
            // Connected a moment ago: a failure now is never "no cluster".
            status = {quorum_state::error, "quorum_getquorate failed: " + cs_error_name(rc)};
            break;
        }
    }
    source.finalize();
    return status;
}

quorum_status check_quorum(std::shared_ptr<quorum_source> source, const deadline& limit)
{
    struct shared_result {
        std::mutex mutex;
        std::condition_variable done;
        std::optional<quorum_status> status;
    };
    auto result = std::make_shared<shared_result>();
    // The worker owns what it uses, so it may safely outlive this call when
    // corosync hangs; it is detached then and dies with the process.
    std::thread worker([result, source, limit] {
        auto status = query_quorum(*source, limit);
        const std::lock_guard lock(result->mutex);
        result->status = std::move(status);
        result->done.notify_all();
    });
    std::unique_lock lock(result->mutex);
    if (!result->done.wait_until(lock, limit.at(), [&] { return result->status.has_value(); })) {
        lock.unlock();
        worker.detach();
        return {quorum_state::error, "corosync did not answer the quorum query before the deadline"};
    }
    auto status = *result->status;
    lock.unlock();
    worker.join();
    return status;
}

outcome quorum_policy(const quorum_status& status, std::string_view service)
{
    const std::string refusing = ": refusing to recover " + std::string(service) + " store";
    switch (status.state) {
    case quorum_state::quorate:
    case quorum_state::no_cluster:
        return outcome::ok();
    case quorum_state::not_quorate:
        // Another partition may own the store right now: touching its pid
        // files or queue could corrupt what a live instance is using.
        return outcome::failed("node is not quorate" + refusing);
    case quorum_state::error:
        break;
    }
    return outcome::failed(status.detail + refusing);
}

} // namespace msg
