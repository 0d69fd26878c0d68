import Dispatch
import Synchronization
import WhittleEngine

/// Runs independent per-variant work of a layer sweep on several threads at once.
///
/// Each worker owns its plans and runs the engine single-threaded: `EngineThreads` is set to
/// 1 while the workers run and restored afterwards (the engine's own threading costs more CPU
/// than it saves on these small batches, see `ScoreEvaluator.parallelVariants`). Only used
/// when the caller asked for more than one worker, i.e. when nothing else uses the engine.
enum VariantWorkers {
    /// `body(worker, item)` for every item, `workers` at a time (worker in 0..<workers, each
    /// worker on one thread at a time, so `body` may use per-worker state). Results by item;
    /// the first error is rethrown after the workers stop.
    static func run<T>(_ items: [Int], workers: Int, _ body: (Int, Int) throws -> T) throws -> [Int: T] {
        guard workers > 1, items.count > 1 else {
            var results: [Int: T] = [:]
            for item in items { results[item] = try body(0, item) }
            return results
        }
        let previousThreads = EngineThreads.count
        EngineThreads.set(1)
        defer { EngineThreads.set(previousThreads) }
        let next = Atomic<Int>(0)
        let stopped = Atomic<Bool>(false)
        // One slot per item, written by the one worker that took the item.
        let slots = UnsafeMutableBufferPointer<Result<T, Error>?>.allocate(capacity: items.count)
        slots.initialize(repeating: nil)
        defer {
            _ = slots.deinitialize()
            slots.deallocate()
        }
        withoutActuallyEscaping(body) { body in
            // The caller guarantees `body` is safe to run concurrently for distinct workers.
            let shared = UncheckedSendableBox((body, slots))
            DispatchQueue.concurrentPerform(iterations: min(workers, items.count)) { worker in
                let (body, slots) = shared.value
                while !stopped.load(ordering: .relaxed) {
                    let slot = next.add(1, ordering: .relaxed).oldValue
                    guard slot < items.count else { return }
                    let result = Result { try body(worker, items[slot]) }
                    if case .failure = result { stopped.store(true, ordering: .relaxed) }
                    slots[slot] = result
                }
            }
        }
        var results: [Int: T] = [:]
        for (slot, item) in items.enumerated() {
            if let result = slots[slot] { results[item] = try result.get() }
        }
        return results
    }
}
