#pragma once

#include <sys/types.h>

#include <filesystem>

namespace msg {

// Whether a live process holds a lock on a file. Daemons such as Postfix's
// master prove they are alive by holding one (flock on master.pid and
// master.lock), which no pid reuse can fake.
struct file_lock_probe {
    bool held = false;
    pid_t holder = 0;  // from /proc/locks or F_GETLK; 0 when unknown (OFD locks)
};

// Looks for flock, POSIX and OFD locks on `file`: first in /proc/locks (by
// device and inode, taking no lock), then with fcntl(F_GETLK), then with a
// momentary non-blocking shared flock. A missing file is not held.
file_lock_probe probe_file_lock(const std::filesystem::path& file);

} // namespace msg
