#pragma once

#include "msg/outcome.hpp"

#include <cstdint>
#include <filesystem>

namespace msg {

// How full an LMDB environment (a slapd back-mdb database) is, in bytes.
struct mdb_usage {
    std::uint64_t page_size = 0;
    std::uint64_t map_bytes = 0;         // the map size the environment records (olcDbMaxSize)
    std::uint64_t high_water_bytes = 0;  // pages ever allocated: (last page number + 1) * page size
    std::uint64_t free_bytes = 0;        // free-list pages the next write may reuse (none an older reader pins)

    // Pages holding data: what counts towards a full map.
    std::uint64_t used_bytes() const { return high_water_bytes > free_bytes ? high_water_bytes - free_bytes : 0; }
};

// Reads the usage of the environment in `dir` through liblmdb, read-only
// and as one more reader beside a live slapd (one short read transaction).
// Throws check_failure 1 when data.mdb or lock.mdb is missing (the database
// moved away under a running slapd; the lock file is never created, as a
// root-owned one would lock slapd out) or LMDB cannot open or read it.
mdb_usage read_mdb_usage(const std::filesystem::path& dir);

// Bytes below which a map counts as full: what is left to grow into plus
// the free list. Less than this, and adds already fail (a single add of a
// small entry touches several trees, and freed pages are reused only once
// no reader holds an older snapshot).
inline constexpr std::uint64_t mdb_full_below_pages = 32;

// The map size check against `maxsize_bytes` (slapd's olcDbMaxSize), or,
// when 0, the map size the environment records, which LMDB only ever raises
// (a lowered olcDbMaxSize is not written back): pass the configured one.
// Failed (1) when fewer than mdb_full_below_pages pages are left (the map
// is full: writes fail with LDAP error 80); degraded (190) when the used
// pages exceed `warn_percent` (0: no warning) of the map; both sizes in
// the reason. Throws as read_mdb_usage.
outcome check_mdb_usage(const std::filesystem::path& dir, int warn_percent, std::uint64_t maxsize_bytes);

} // namespace msg
