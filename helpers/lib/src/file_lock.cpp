#include "msg/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace msg {

namespace {

// One line of /proc/locks, e.g.
//   "2: FLOCK  ADVISORY  WRITE 17434 fe:00:10953217 0 EOF"
// Blocked waiters appear as "2: -> FLOCK ..." and hold nothing.
bool lock_line_matches(const std::string& line, unsigned dev_major, unsigned dev_minor, ino_t inode, pid_t& holder)
{
    std::istringstream fields(line);
    std::string ordinal;
    std::string kind;
    std::string mode;
    std::string access;
    long pid = 0;
    std::string where;
    if (!(fields >> ordinal >> kind) || kind == "->") {
        return false;
    }
    if (!(fields >> mode >> access >> pid >> where)) {
        return false;
    }
    unsigned major_number = 0;
    unsigned minor_number = 0;
    unsigned long long inode_number = 0;
    // The kernel prints the device in hex and the inode in decimal.
    if (std::sscanf(where.c_str(), "%x:%x:%llu", &major_number, &minor_number, &inode_number) != 3) {
        return false;
    }
    if (major_number != dev_major || minor_number != dev_minor || inode_number != inode) {
        return false;
    }
    holder = pid > 0 ? static_cast<pid_t>(pid) : 0;
    return true;
}

} // namespace

file_lock_probe probe_file_lock(const std::filesystem::path& file)
{
    file_lock_probe probe;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        return probe;
    }

    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        pid_t holder = 0;
        if (lock_line_matches(line, major(st.st_dev), minor(st.st_dev), st.st_ino, holder)) {
            probe.held = true;
            probe.holder = holder;
            return probe;
        }
    }

    // /proc/locks names the filesystem's own device, which can differ from
    // stat's st_dev (overlayfs, btrfs subvolumes): ask the kernel directly.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return probe;
    }
    struct flock query {};
    query.l_type = F_WRLCK;
    query.l_whence = SEEK_SET;
    if (::fcntl(fd, F_GETLK, &query) == 0 && query.l_type != F_UNLCK) {
        probe.held = true;
        probe.holder = query.l_pid > 0 ? query.l_pid : 0;
    } else if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
        probe.held = errno == EWOULDBLOCK;
    } else {
        ::flock(fd, LOCK_UN);
    }
    ::close(fd);
    return probe;
}

} // namespace msg
