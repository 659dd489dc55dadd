// ddn/parallel.h: a loop over independent items on a pool of threads that sleep when idle.
//
// Every batched call of ddn (ddn::Forward, ddn::Backward, the finiteness checks) splits its problems over
// threads with ParallelFor. The threads are created once, on first use, and block on a condition variable
// between calls: they never spin. This matters on every machine that other work also uses (a shared
// server, a laptop with a browser open): spin-waiting threads (OpenMP's default, which ddn used before)
// compete for the cores with that work and with the thread that has real work to do, and made two threads
// several times slower than one under load.
//
// Scheduling. The caller takes part in the loop. Items are handed out in chunks from one atomic counter, so
// a thread that the operating system deschedules simply takes fewer chunks: a loaded machine degrades to
// the speed of the threads that do run, never below one thread's speed plus the wake-up of the others
// (a few microseconds). Each item is processed by exactly one thread; a loop whose items write disjoint
// outputs therefore gives bit-identical results for any thread count.
//
// Nesting and concurrency. A ParallelFor called from inside a ParallelFor body, or while another thread of
// the process is running one, runs serially on the calling thread (no deadlock, no oversubscription).
//
// Thread counts. `threads` = 0 means "the cores that are free": the CPUs this process may run on (its
// affinity mask) less those that other runnable work occupies right now (the kernel's count of runnable tasks,
// /proc/loadavg, re-read at most every 20 ms), at least one. On a machine that other work keeps busy, threads
// that compete with it for the cores make a loop slower than one thread (a helper descheduled in the middle of
// its chunk holds up the end of the loop), so the default then runs the loop on the calling thread alone.
// The environment variable DDN_NUM_THREADS (then OMP_NUM_THREADS, for compatibility) or SetDefaultThreadCount
// fixes the count instead, load or not; so does an explicit `threads` > 0. A negative count or one above
// kMaxThreads is refused with InvalidInput.
//
// Idle pool threads poll for the next loop for 200 µs after finishing one (batched calls come in bursts and
// waking a blocked thread costs tens of microseconds), then block.
//
//   ddn::ParallelFor(n, /*threads=*/0, [&](int64_t begin, int64_t end, int worker) {
//     for (int64_t i = begin; i < end; ++i) out[i] = f(in[i]);   // worker ∈ [0, threads): per-thread state
//   });
#pragma once

#include <cstdint>
#include <functional>

namespace ddn {

// The largest thread count a caller may ask for.
constexpr int kMaxThreads = 256;

// The thread count that `threads` = 0 stands for now (≥ 1, ≤ kMaxThreads): see "Thread counts" above.
int DefaultThreadCount();
// The load rule of DefaultThreadCount: `cores` usable CPUs out of `machine_cpus`, with `others_running` runnable
// tasks besides the caller on the machine (< 0: unknown) → max(1, cores − ⌈others·cores/machine_cpus⌉).
int LoadAwareThreadCount(int cores, int machine_cpus, int others_running);
// Sets the thread count that `threads` = 0 stands for, process-wide (like Eigen::setNbThreads): the graph's
// dense layers use it, and every batched call that is given 0. 0 restores the automatic count. Throws
// InvalidInput outside [0, kMaxThreads].
void SetDefaultThreadCount(int threads);

// The number of threads a loop of `items` items will use for a requested count: 0 → DefaultThreadCount(),
// never more than `items`, at least 1. Throws InvalidInput naming the value if `requested` is negative or
// above kMaxThreads.
int ResolveThreadCount(int requested, int64_t items);

// The thread counts that ParallelFor loops actually ran with (outermost loops only: a nested loop runs on its
// caller's thread), recorded process-wide since the last ResetThreadCountRecord(). For benchmarks that must say
// what the default count resolved to on a loaded machine (`ddn bench` prints it per run). `loops` = 0: no loop ran.
struct ThreadCountRecord {
  int fewest = 0;     // smallest thread count of a loop
  int most = 0;       // largest
  int64_t loops = 0;  // number of loops recorded
};
ThreadCountRecord ThreadCountsUsed();
void ResetThreadCountRecord();

// Calls body(begin, end, worker) on disjoint ranges covering [0, items), each range at least `min_chunk`
// items (except the last), on up to `threads` threads (see ResolveThreadCount). `worker` identifies the
// calling thread within this loop (0 is the caller) so that the body can use per-thread scratch state; size
// such state by a count resolved once and pass that count here (the default follows the load and may change
// between two calls).
// Exceptions thrown by the body are rethrown to the caller after every range has been processed: the one
// thrown for the lowest `begin` wins.
void ParallelFor(int64_t items, int threads, int64_t min_chunk,
                 const std::function<void(int64_t begin, int64_t end, int worker)>& body);

}  // namespace ddn
