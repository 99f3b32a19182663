#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"

#include <corosync/corotypes.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace msg {

// This node's standing in the cluster, as far as recovery cares.
enum class quorum_state {
    quorate,      // corosync answers and this node's partition has quorum
    not_quorate,  // corosync answers and this node's partition lacks quorum
    no_cluster,   // corosync is not running on this node at all
    error,        // corosync runs but could not be asked, or quorum is not configured
};

struct quorum_status {
    quorum_state state = quorum_state::error;
    std::string detail;  // one line: what was seen
};

// What a Corosync return code means to a caller: the one place cs_error_t is
// interpreted (as Pacemaker's pcmk__corosync2rc is for Pacemaker).
enum class cs_verdict {
    ok,
    retry,        // CS_ERR_TRY_AGAIN, CS_ERR_QUEUE_FULL: corosync is busy, ask again shortly
    unreachable,  // the IPC connection failed: corosync may not be running
    failed,       // anything else
};
cs_verdict classify_cs_error(cs_error_t rc);

// The enumerator's name ("CS_ERR_TRY_AGAIN"), or "cs_error_t N" for unknown values.
std::string cs_error_name(cs_error_t rc);

// The Corosync calls a quorum query makes, behind an interface so tests can
// stand in for corosync. One object serves one query.
class quorum_source {
public:
    virtual ~quorum_source() = default;
    // quorum_initialize(); fills quorum_type (QUORUM_SET or QUORUM_FREE) on CS_OK.
    virtual cs_error_t initialize(std::uint32_t& quorum_type) = 0;
    // quorum_getquorate() on the initialised handle; sets quorate to 0 or 1.
    virtual cs_error_t getquorate(int& quorate) = 0;
    // quorum_finalize() when initialised; safe to call more than once.
    virtual void finalize() = 0;
    // True when a corosync process lives in this process's network namespace
    // (where libqb's IPC sockets are), i.e. a failed connection is a fault,
    // not an absent cluster.
    virtual bool corosync_running() = 0;
};

// The real thing: libquorum talking to the local corosync.
std::shared_ptr<quorum_source> corosync_quorum_source();

// Asks `source` (blocking in its calls), retrying busy answers a bounded
// number of times with short pauses that never run past `limit`.
quorum_status query_quorum(quorum_source& source, const deadline& limit);

// query_quorum on a worker thread, so that a corosync that never answers
// (its IPC calls wait without a timeout) still ends the query at `limit`,
// with state error.
quorum_status check_quorum(std::shared_ptr<quorum_source> source, const deadline& limit);

// msg-recover's policy for touching `service`'s shared store: success to
// proceed (quorate, or no cluster at all: standalone), else the failure to
// exit with, e.g. "node is not quorate: refusing to recover postfix store".
outcome quorum_policy(const quorum_status& status, std::string_view service);

} // namespace msg
