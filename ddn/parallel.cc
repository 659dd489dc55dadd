#include "ddn/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ddn/error.h"

namespace ddn {
namespace {

int CoresAvailable() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// A positive integer from the environment, or 0 if unset or not a positive integer.
int ThreadsFromEnvironment(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value) return 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  if (*end != '\0' || n < 1) return 0;
  return static_cast<int>(std::min<long>(n, kMaxThreads));
}

// One loop being run: the items are handed out in chunks from `next`.
struct Job {
  const std::function<void(int64_t, int64_t, int)>* body = nullptr;
  int64_t items = 0;
  int64_t chunk = 1;
  std::atomic<int64_t> next{0};
  int max_helpers = 0;  // pool threads allowed to join (threads − 1)
  int joined = 0;       // pool threads that joined (under Pool::mutex_)
  int active = 0;       // pool threads still working on it (under Pool::mutex_)
  bool closed = false;  // no more pool threads may join (under Pool::mutex_)
  std::mutex error_mutex;
  std::exception_ptr error;
  int64_t error_begin = -1;

  // Takes chunks until none is left. `worker` is the thread's index within this loop.
  void Work(int worker) {
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= items) return;
      const int64_t end = std::min(items, begin + chunk);
      try {
        (*body)(begin, end, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error_begin < 0 || begin < error_begin) {
          error = std::current_exception();
          error_begin = begin;
        }
      }
    }
  }
};

thread_local bool inside_parallel_for = false;

// The pool: threads created on demand, each blocked on `wake_` until a job is posted. One job at a time
// (`busy_`); a second concurrent caller runs its loop serially.
class Pool {
 public:
  static Pool& Instance() {
    // Never destroyed: worker threads may still be blocked in wake_.wait() at exit, and joining them from a
    // static destructor would race with other static destructors.
    static Pool* pool = new Pool;
    return *pool;
  }

  // Runs the job with the caller and up to job->max_helpers pool threads. False if the pool is busy.
  bool Run(Job* job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Grow(job->max_helpers);
      current_ = job;
      ++generation_;
    }
    if (job->max_helpers >= static_cast<int>(threads_.size())) {
      wake_.notify_all();
    } else {
      for (int i = 0; i < job->max_helpers; ++i) wake_.notify_one();
    }
    inside_parallel_for = true;
    job->Work(0);
    inside_parallel_for = false;
    std::unique_lock<std::mutex> lock(mutex_);
    job->closed = true;
    current_ = nullptr;
    done_.wait(lock, [&] { return job->active == 0; });
    return true;
  }

 private:
  Pool() = default;

  // Makes sure `n` pool threads exist (called under mutex_).
  void Grow(int n) {
    while (static_cast<int>(threads_.size()) < n) {
      threads_.emplace_back([this] { WorkerLoop(); });
      threads_.back().detach();
    }
  }

  void WorkerLoop() {
    inside_parallel_for = true;  // a ParallelFor inside a body runs serially
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      Job* job = current_;
      if (!job || job->closed || job->joined >= job->max_helpers) continue;
      const int worker = ++job->joined;
      ++job->active;
      lock.unlock();
      job->Work(worker);
      lock.lock();
      if (--job->active == 0 && job->closed) done_.notify_all();
    }
  }

  std::mutex busy_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> threads_;
  Job* current_ = nullptr;
  uint64_t generation_ = 0;
};

std::atomic<int> default_override{0};

int AutomaticThreadCount() {
  static const int count = [] {
    int n = ThreadsFromEnvironment("DDN_NUM_THREADS");
    if (n == 0) n = ThreadsFromEnvironment("OMP_NUM_THREADS");
    if (n == 0) n = CoresAvailable();
    return std::clamp(n, 1, kMaxThreads);
  }();
  return count;
}

}  // namespace

int DefaultThreadCount() {
  const int n = default_override.load(std::memory_order_relaxed);
  return n > 0 ? n : AutomaticThreadCount();
}

void SetDefaultThreadCount(int threads) {
  ResolveThreadCount(threads, 1);  // validates
  default_override.store(threads, std::memory_order_relaxed);
}

int ResolveThreadCount(int requested, int64_t items) {
  if (requested < 0 || requested > kMaxThreads) {
    throw InvalidInput("thread count must be between 0 (all cores) and " + std::to_string(kMaxThreads) + ", got " +
                       std::to_string(requested));
  }
  const int threads = requested == 0 ? DefaultThreadCount() : requested;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
}

void ParallelFor(int64_t items, int threads, int64_t min_chunk,
                 const std::function<void(int64_t, int64_t, int)>& body) {
  if (items <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  const int64_t chunks = (items + min_chunk - 1) / min_chunk;
  const int n = ResolveThreadCount(threads, chunks);
  if (n == 1 || inside_parallel_for) {
    body(0, items, 0);
    return;
  }
  Job job;
  job.body = &body;
  job.items = items;
  // About eight chunks per thread: enough to even out problems of different cost and threads that the
  // operating system deschedules, few enough that the shared counter is not contended.
  job.chunk = std::max(min_chunk, items / (8 * static_cast<int64_t>(n)));
  job.max_helpers = n - 1;
  if (!Pool::Instance().Run(&job)) {
    body(0, items, 0);
    return;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace ddn
