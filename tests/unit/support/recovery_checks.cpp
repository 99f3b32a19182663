#include "recovery_checks.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <utility>

namespace msg_test {

msg::quorum_check fixed_quorum(msg::quorum_state state, std::string detail)
{
    return [state, detail = std::move(detail)](const msg::deadline&) { return msg::quorum_status{state, detail}; };
}

msg::quorum_check standalone_quorum()
{
    return fixed_quorum(msg::quorum_state::no_cluster, "corosync is not running on this node");
}

pid_t dead_pid()
{
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    return pid;
}

} // namespace msg_test
