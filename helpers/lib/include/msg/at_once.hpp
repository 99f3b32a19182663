#pragma once

#include <functional>
#include <thread>
#include <vector>

namespace msg {

// Runs every task on a thread of its own and returns their results in the
// tasks' order. Each check waits on its own server: one after another, a
// stalled server would hold every later check back by its whole deadline,
// and a healthy call would pay every round trip in turn.
template <typename Result>
std::vector<Result> run_at_once(const std::vector<std::function<Result()>>& tasks)
{
    std::vector<Result> results(tasks.size());
    std::vector<std::thread> workers;
    workers.reserve(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i)
        workers.emplace_back([&results, &tasks, i] { results[i] = tasks[i](); });
    for (auto& worker : workers)
        worker.join();
    return results;
}

} // namespace msg
