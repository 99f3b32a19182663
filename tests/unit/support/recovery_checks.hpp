#pragma once

#include "msg/quorum.hpp"
#include "msg/recovery_steps.hpp"

#include <sys/types.h>

#include <string>

namespace msg_test {

// A quorum answer that never asks corosync: every recovery test decides
// the node's standing itself.
msg::quorum_check fixed_quorum(msg::quorum_state state, std::string detail);

// The answer on a node without corosync: recovery proceeds standalone.
msg::quorum_check standalone_quorum();

// A pid that certainly names no process: a child that has been reaped.
pid_t dead_pid();

} // namespace msg_test
