#include "ddn/parallel.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

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
    int sleeping;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Grow(job->max_helpers);
      current_ = job;
      generation_.fetch_add(1, std::memory_order_release);
      sleeping = sleeping_;
    }
    // Threads still spinning after their last job see the new generation without a system call.
    if (sleeping > 0) {
      if (job->max_helpers >= static_cast<int>(threads_.size())) {
        wake_.notify_all();
      } else {
        for (int i = 0; i < std::min(job->max_helpers, sleeping); ++i) wake_.notify_one();
      }
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

  // After a job, a pool thread polls for the next one this long before it blocks: batched calls come in bursts
  // (the finiteness check, the forward, the backward, a network's next layer), and waking a blocked thread
  // costs tens of microseconds (more when its core has gone idle), as much as a small call's whole work. The
  // poll is short and pauses between reads, so an idle process costs nothing measurable.
  static constexpr std::chrono::microseconds kSpin{200};

  void WorkerLoop() {
    inside_parallel_for = true;  // a ParallelFor inside a body runs serially
    uint64_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (int polls = 0; generation_.load(std::memory_order_acquire) == seen; ++polls) {
#if defined(__x86_64__) || defined(__i386__)
        _mm_pause();
#endif
        if ((polls & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (generation_.load(std::memory_order_relaxed) == seen) {
        ++sleeping_;
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        --sleeping_;
      }
      seen = generation_.load(std::memory_order_relaxed);
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
  std::atomic<uint64_t> generation_{0};  // written under mutex_, read by spinning threads without it
  int sleeping_ = 0;                     // pool threads blocked on wake_ (under mutex_)
};

std::atomic<int> default_override{0};

// ThreadCountsUsed(): relaxed atomics, a few nanoseconds per loop.
std::atomic<int> fewest_threads{0};  // 0: none recorded
std::atomic<int> most_threads{0};
std::atomic<int64_t> loops_recorded{0};

void RecordThreadCount(int n) {
  int seen = fewest_threads.load(std::memory_order_relaxed);
  while ((seen == 0 || n < seen) && !fewest_threads.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
  seen = most_threads.load(std::memory_order_relaxed);
  while (n > seen && !most_threads.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
  loops_recorded.fetch_add(1, std::memory_order_relaxed);
}

int AutomaticThreadCount() {
  static const int count = [] {
    int n = ThreadsFromEnvironment("DDN_NUM_THREADS");
    if (n == 0) n = ThreadsFromEnvironment("OMP_NUM_THREADS");
    if (n == 0) n = CoresAvailable();
    return std::clamp(n, 1, kMaxThreads);
  }();
  return count;
}

// Whether the automatic count came from the cores (not from DDN_NUM_THREADS / OMP_NUM_THREADS): only then does
// the machine's load reduce it.
bool CountFromCores() {
  static const bool from_cores =
      ThreadsFromEnvironment("DDN_NUM_THREADS") == 0 && ThreadsFromEnvironment("OMP_NUM_THREADS") == 0;
  return from_cores;
}

// Runnable tasks on the machine other than the caller: the fourth field of /proc/loadavg ("running/total",
// the kernel's instantaneous count, which includes the reading thread), re-read at most every 20 ms; -1 when it
// cannot be read.
int OtherRunnableTasks() {
  static std::atomic<int64_t> sampled_at{0};  // 0: never
  static std::atomic<int> others{-1};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  int64_t last = sampled_at.load(std::memory_order_relaxed);
  if (last != 0 && now - last < 20000) return others.load(std::memory_order_relaxed);
  if (!sampled_at.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    return others.load(std::memory_order_relaxed);  // another thread is sampling
  }
  static const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  int value = -1;
  char buf[128];
  const ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
  if (n > 0) {
    buf[n] = '\0';
    // "0.52 0.58 0.59 2/137 12345": skip three fields, then the running count.
    const char* c = buf;
    for (int field = 0; field < 3 && c; ++field) {
      c = std::strchr(c, ' ');
      if (c) ++c;
    }
    if (c) {
      char* end = nullptr;
      const long running = std::strtol(c, &end, 10);
      if (end != c && *end == '/' && running >= 1) value = static_cast<int>(running - 1);
    }
  }
  others.store(value, std::memory_order_relaxed);
  return value;
}

}  // namespace

int LoadAwareThreadCount(int cores, int machine_cpus, int others_running) {
  if (others_running <= 0 || machine_cpus <= 0) return std::max(1, cores);
  // The other runnable tasks, spread over the machine's CPUs, as a share of ours (rounded up).
  const int64_t busy = (static_cast<int64_t>(others_running) * cores + machine_cpus - 1) / machine_cpus;
  return static_cast<int>(std::clamp<int64_t>(cores - busy, 1, std::max(1, cores)));
}

int DefaultThreadCount() {
  const int n = default_override.load(std::memory_order_relaxed);
  if (n > 0) return n;
  const int cores = AutomaticThreadCount();
  if (cores == 1 || !CountFromCores()) return cores;
  static const int machine_cpus = std::max(1, get_nprocs());
  return LoadAwareThreadCount(cores, machine_cpus, OtherRunnableTasks());
}

ThreadCountRecord ThreadCountsUsed() {
  ThreadCountRecord r;
  r.fewest = fewest_threads.load(std::memory_order_relaxed);
  r.most = most_threads.load(std::memory_order_relaxed);
  r.loops = loops_recorded.load(std::memory_order_relaxed);
  return r;
}

void ResetThreadCountRecord() {
  fewest_threads.store(0, std::memory_order_relaxed);
  most_threads.store(0, std::memory_order_relaxed);
  loops_recorded.store(0, std::memory_order_relaxed);
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
  if (inside_parallel_for) {  // nested: runs on the caller's thread, counted with the outer loop
    body(0, items, 0);
    return;
  }
  if (n == 1) {
    RecordThreadCount(1);
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
    RecordThreadCount(1);  // another thread of the process holds the pool: this loop ran serially
    body(0, items, 0);
    return;
  }
  RecordThreadCount(n);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace ddn
