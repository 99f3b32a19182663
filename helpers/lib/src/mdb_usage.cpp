#include "msg/mdb_usage.hpp"

#include <lmdb.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

namespace msg {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& reason)
{
    throw check_failure(outcome::failed(reason));
}

void require(int rc, const std::string& what, const fs::path& dir)
{
    if (rc != MDB_SUCCESS)
        fail("MDB database " + dir.string() + ": " + what + " failed: " + mdb_strerror(rc));
}

struct env_closer {
    void operator()(MDB_env* env) const { mdb_env_close(env); }
};
struct txn_aborter {
    void operator()(MDB_txn* txn) const { mdb_txn_abort(txn); }
};
struct cursor_closer {
    void operator()(MDB_cursor* cursor) const { mdb_cursor_close(cursor); }
};

// The oldest snapshot a reader still uses: the lowest transaction id in the
// reader table (ours reads the newest, `newest`, so it changes nothing).
std::uint64_t oldest_reader(MDB_env* env, std::uint64_t newest)
{
    std::string table;
    mdb_reader_list(
        env,
        [](const char* text, void* context) {
            *static_cast<std::string*>(context) += text;
            return 0;
        },
        &table);
    std::uint64_t oldest = newest;
    std::istringstream lines(table);
    std::string line;
    while (std::getline(lines, line)) {
        // "    pid     thread     txnid": "-" for a reader between transactions.
        std::istringstream words(line);
        long pid = 0;
        std::string thread;
        std::string txnid;
        if (!(words >> pid >> thread >> txnid) || txnid.empty()
            || txnid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        oldest = std::min<std::uint64_t>(oldest, std::stoull(txnid));
    }
    return oldest;
}

// "1.5 MiB (1572864 bytes)", "32.0 KiB (32768 bytes)"
std::string describe_bytes(std::uint64_t bytes)
{
    const bool mebibytes = bytes >= 1024 * 1024;
    std::ostringstream text;
    text.setf(std::ios::fixed);
    text.precision(1);
    text << static_cast<double>(bytes) / (mebibytes ? 1024.0 * 1024.0 : 1024.0) << (mebibytes ? " MiB (" : " KiB (")
         << bytes << " bytes)";
    return text.str();
}

} // namespace

mdb_usage read_mdb_usage(const fs::path& dir)
{
    std::error_code ec;
    for (const char* name : {"data.mdb", "lock.mdb"}) {
        // Without lock.mdb, LMDB would create it, owned by root: slapd,
        // running as its own user, could then no longer open the database.
        if (!fs::is_regular_file(dir / name, ec))
            fail("MDB database " + dir.string() + " has no " + name +
                 ": the database directory was moved or removed (or is not the suffix's)");
    }

    MDB_env* raw_env = nullptr;
    require(mdb_env_create(&raw_env), "mdb_env_create", dir);
    const std::unique_ptr<MDB_env, env_closer> env(raw_env);
    // MDB_NOTLS: the reader slot belongs to the transaction, not to this
    // (worker) thread, and is released with it.
    require(mdb_env_open(env.get(), dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0600), "mdb_env_open", dir);

    MDB_txn* raw_txn = nullptr;
    require(mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &raw_txn), "mdb_txn_begin", dir);
    const std::unique_ptr<MDB_txn, txn_aborter> txn(raw_txn);

    MDB_envinfo info{};
    require(mdb_env_info(env.get(), &info), "mdb_env_info", dir);
    MDB_stat stat{};
    require(mdb_env_stat(env.get(), &stat), "mdb_env_stat", dir);

    // Database 0 is LMDB's free list: one record per transaction that freed
    // pages, keyed by its id, holding a count of page numbers followed by
    // the numbers (what mdb_stat -f adds up). A writer reuses a record only
    // once no reader still sees the snapshot before it: pages pinned by an
    // old reader (a long search, a backup) are not free for the next write.
    const std::uint64_t oldest = oldest_reader(env.get(), info.me_last_txnid);
    MDB_cursor* raw_cursor = nullptr;
    require(mdb_cursor_open(txn.get(), 0, &raw_cursor), "opening the free list", dir);
    const std::unique_ptr<MDB_cursor, cursor_closer> cursor(raw_cursor);
    std::uint64_t free_pages = 0;
    MDB_val key{};
    MDB_val data{};
    int rc = MDB_SUCCESS;
    while ((rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT)) == MDB_SUCCESS) {
        if (data.mv_size < sizeof(std::size_t) || key.mv_size != sizeof(std::size_t))
            fail("MDB database " + dir.string() + ": malformed free list record");
        std::size_t freed_by = 0;
        std::memcpy(&freed_by, key.mv_data, sizeof freed_by);
        std::size_t count = 0;
        std::memcpy(&count, data.mv_data, sizeof count);
        if (freed_by < oldest)
            free_pages += count;
    }
    if (rc != MDB_NOTFOUND)
        require(rc, "reading the free list", dir);

    mdb_usage usage;
    usage.page_size = stat.ms_psize;
    usage.map_bytes = info.me_mapsize;
    usage.high_water_bytes = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize;
    usage.free_bytes = free_pages * stat.ms_psize;
    return usage;
}

outcome check_mdb_usage(const fs::path& dir, int warn_percent, std::uint64_t maxsize_bytes)
{
    const mdb_usage usage = read_mdb_usage(dir);
    const std::uint64_t map = maxsize_bytes != 0 ? maxsize_bytes : usage.map_bytes;
    if (map == 0)
        return outcome::ok();
    const std::uint64_t used = usage.used_bytes();
    const std::uint64_t left = (map > usage.high_water_bytes ? map - usage.high_water_bytes : 0) + usage.free_bytes;
    if (left < mdb_full_below_pages * usage.page_size)
        return outcome::failed("MDB database " + dir.string() + " is full: " + describe_bytes(left)
                               + " left of its maxsize " + describe_bytes(map)
                               + "; writes fail with LDAP error 80 (raise olcDbMaxSize)");
    const double percent = 100.0 * static_cast<double>(used) / static_cast<double>(map);
    if (warn_percent <= 0 || percent <= warn_percent)
        return outcome::ok();
    std::ostringstream reason;
    reason.setf(std::ios::fixed);
    reason.precision(0);
    reason << "MDB database " << dir.string() << " is " << percent << "% full: " << describe_bytes(used)
           << " used of its maxsize " << describe_bytes(map) << " (warning above " << warn_percent
           << "%; a full map fails every write with LDAP error 80)";
    return outcome::degraded(reason.str());
}

} // namespace msg
