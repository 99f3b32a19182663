#include "msg/file_lock.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

enum class lock_kind { flock_exclusive, posix_write, ofd_write };

// A child process that holds one lock on `file` until the test ends.
class lock_holder {
public:
    lock_holder(const fs::path& file, lock_kind kind)
    {
        int ready[2];
        if (::pipe(ready) != 0) {
            return;
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(ready[0]);
            const int fd = ::open(file.c_str(), O_RDWR);
            bool locked = false;
            if (kind == lock_kind::flock_exclusive) {
                locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
            } else {
                struct flock lock {};
                lock.l_type = F_WRLCK;
                lock.l_whence = SEEK_SET;
                locked = ::fcntl(fd, kind == lock_kind::posix_write ? F_SETLK : F_OFD_SETLK, &lock) == 0;
            }
            const char answer = locked ? 'y' : 'n';
            (void)!::write(ready[1], &answer, 1);
            ::pause();
            ::_exit(0);
        }
        ::close(ready[1]);
        char answer = 'n';
        locked_ = ::read(ready[0], &answer, 1) == 1 && answer == 'y';
        ::close(ready[0]);
    }
    ~lock_holder()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    lock_holder(const lock_holder&) = delete;
    lock_holder& operator=(const lock_holder&) = delete;

    pid_t pid() const { return pid_; }
    bool locked() const { return locked_; }

private:
    pid_t pid_ = -1;
    bool locked_ = false;
};

class FileLock : public ::testing::Test {
protected:
    void SetUp() override
    {
        char templ[] = "/tmp/msg-lock-test.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        dir_ = templ;
        file_ = dir_ / "master.pid";
        std::ofstream(file_) << "123\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    fs::path dir_;
    fs::path file_;
};

} // namespace

TEST_F(FileLock, UnlockedFileIsNotHeld)
{
    EXPECT_FALSE(msg::probe_file_lock(file_).held);
    // The probe itself must leave no lock behind.
    lock_holder after(file_, lock_kind::flock_exclusive);
    EXPECT_TRUE(after.locked());
}

TEST_F(FileLock, MissingFileIsNotHeld)
{
    EXPECT_FALSE(msg::probe_file_lock(dir_ / "absent").held);
}

TEST_F(FileLock, FlockHolderIsFound)
{
    lock_holder holder(file_, lock_kind::flock_exclusive);
    ASSERT_TRUE(holder.locked());
    const auto probe = msg::probe_file_lock(file_);
    EXPECT_TRUE(probe.held);
    EXPECT_EQ(probe.holder, holder.pid());
}

TEST_F(FileLock, PosixLockHolderIsFound)
{
    lock_holder holder(file_, lock_kind::posix_write);
    ASSERT_TRUE(holder.locked());
    const auto probe = msg::probe_file_lock(file_);
    EXPECT_TRUE(probe.held);
    EXPECT_EQ(probe.holder, holder.pid());
}

TEST_F(FileLock, OfdLockIsFound)
{
    lock_holder holder(file_, lock_kind::ofd_write);
    ASSERT_TRUE(holder.locked());
    EXPECT_TRUE(msg::probe_file_lock(file_).held);
}

TEST_F(FileLock, LockEndsWithItsHolder)
{
    {
        lock_holder holder(file_, lock_kind::flock_exclusive);
        ASSERT_TRUE(holder.locked());
        ASSERT_TRUE(msg::probe_file_lock(file_).held);
    }
    EXPECT_FALSE(msg::probe_file_lock(file_).held);
}
