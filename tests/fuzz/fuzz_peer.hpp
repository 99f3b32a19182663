#pragma once

// What every libFuzzer target of tests/fuzz shares: a peer that plays the
// fuzzer's bytes as a server's side of a dialogue, and the promises every
// check's outcome keeps whatever a server sends.

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace msg_fuzz {

// A private directory (0700) under TMPDIR, removed with everything in it.
class scratch_dir {
public:
    scratch_dir();
    ~scratch_dir();
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// A unix-socket server that answers whatever connects with fixed bytes: it
// sends them all at once, hangs up its sending side and reads what the
// client says until the client closes. The real probes (msg::check_smtp,
// check_imap...) run against it unchanged, line_channel included, so the
// fuzzer exercises exactly the code that meets a hostile server.
class scripted_peer {
public:
    scripted_peer();
    ~scripted_peer();
    scripted_peer(const scripted_peer&) = delete;
    scripted_peer& operator=(const scripted_peer&) = delete;

    // The socket to give the probe as probe_options::socket_path.
    const std::string& socket_path() const { return socket_path_; }

    // Runs `client` while the peer answers its one connection (if it makes
    // one) with `reply`; returns once the peer has finished with it.
    msg::outcome converse(std::string_view reply, const std::function<msg::outcome()>& client);

private:
    void serve();
    void answer(int connection);

    scratch_dir dir_;
    std::string socket_path_;
    int listener_ = -1;
    int client_returned_[2] = {-1, -1}; // a pipe: converse writes a byte once the client returned
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string reply_;
    bool job_pending_ = false;   // converse has a reply for the next connection
    bool client_done_ = false;   // the client returned: stop waiting for it to connect
    bool job_finished_ = false;  // the peer is done with this round
    bool stopping_ = false;
    std::thread server_;
};

// The password of credentials_file(); no reason may ever contain it.
inline constexpr std::string_view fuzz_password = "Fuzz-S3cret-pw";

// A credentials file as msg::read_credentials_file takes it (root, 0600):
// user "fuzzer", password fuzz_password. Created once per process.
const std::filesystem::path& credentials_file();

// The time limit every fuzzed check gets (see require_no_deadline_wait).
inline constexpr int fuzz_time_limit_ms = 10'000;

// The option bits of an input (its first byte) and the server's bytes (the rest).
struct fuzz_input {
    std::uint8_t options = 0;
    std::string_view server_bytes;

    bool option(int bit) const { return (options >> bit & 1U) != 0; }
};
fuzz_input split_input(const std::uint8_t* data, std::size_t size);

// Where a fuzzed probe connects: `peer`'s socket, fuzz_time_limit_ms, and
// with `starttls` STARTTLS verified against `server_name`.
msg::probe_options endpoint_of(const scripted_peer& peer, bool starttls, const std::string& server_name);

// endpoint_of the peer fuzz_reply_check plays.
msg::probe_options peer_endpoint(bool starttls, const std::string& server_name);

// One input of a reply target, as its check sees it.
struct fuzz_run {
    fuzz_input input;
    msg::deadline until;
    bool holds_password = false; // the probe was given credentials_file()

    // credentials_file(), noting that the probe now holds the password.
    const std::filesystem::path& credentials()
    {
        holds_password = true;
        return credentials_file();
    }
};

// What every reply target does with one input: the server's bytes played by
// one scripted_peer (per process) while `check` runs against peer_endpoint
// with the options the input's first byte selects, then the outcome judged
// by require_sound_outcome (success or failure (1), nothing else) and
// require_no_deadline_wait.
void fuzz_reply_check(const std::uint8_t* data, std::size_t size, const std::function<msg::outcome(fuzz_run&)>& check);

// Aborts (which libFuzzer reports as a crash, with the input) unless
// `result` keeps the promises helpers make to the agents: its code is one
// of `allowed`; a reason exactly when it is not success; the reason one
// line of printable ASCII, at most 1024 bytes, and, when the probe held
// the password (`holds_password`), without it.
void require_sound_outcome(const msg::outcome& result, std::initializer_list<msg::ocf_code> allowed,
                           bool holds_password);

// Aborts when `until` has passed: the peer has always said all it will and
// hung up, so a check that ran to its deadline was waiting for nothing.
void require_no_deadline_wait(const msg::deadline& until);

// Aborts with `what` when `holds` is false: a broken invariant of a parser.
void require(bool holds, std::string_view what);

} // namespace msg_fuzz
