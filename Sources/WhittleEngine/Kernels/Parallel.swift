import COpenBLAS
import Dispatch
import Synchronization

/// Threading for the engine: BLAS's own threads for GEMMs, and `parallelFor` for loops that
/// do not call BLAS. Never call BLAS inside `parallelFor` (the two pools would oversubscribe
/// the cores).
public enum EngineThreads {
    private static let configured = Atomic<Int>(0)

    /// The number of threads loops and BLAS use (default: all cores).
    public static var count: Int {
        let value = configured.load(ordering: .relaxed)
        return value > 0 ? value : ProcessInfoCores.active
    }

    /// Sets the thread count for both BLAS and `parallelFor`.
    public static func set(_ threads: Int) {
        let clamped = max(1, threads)
        configured.store(clamped, ordering: .relaxed)
        openblas_set_num_threads(Int32(clamped))
    }
}

enum ProcessInfoCores {
    static let active: Int = {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }()
}

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body(index)` for every index in `0..<count`, split into contiguous chunks over the
/// engine's threads. Small loops (under `grain` iterations per thread) run inline.
@inlinable
public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Int) -> Void) {
    let threads = EngineThreads.count
    if threads <= 1 || count < 2 * max(1, grain) {
        for index in 0..<count { body(index) }
        return
    }
    let chunks = min(threads, (count + max(1, grain) - 1) / max(1, grain))
    withoutActuallyEscaping(body) { body in
        // The chunks touch disjoint indices; callers guarantee `body` is safe to run concurrently.
        let shared = UncheckedSendableBox(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * count / chunks
            let end = (chunk + 1) * count / chunks
            for index in start..<end { shared.value(index) }
        }
    }
}

/// Carries a value into a `@Sendable` closure when the caller guarantees safe use.
public struct UncheckedSendableBox<Value>: @unchecked Sendable {
    public let value: Value
    @inlinable public init(_ value: Value) { self.value = value }
}

/// Runs tasks `0..<tasks` on `workers` threads, worker `w` taking the contiguous run
/// `[w * tasks / workers, (w + 1) * tasks / workers)`; `body(task, w)` may use per-worker
/// storage indexed by `w`.
public func parallelWorkers(_ workers: Int, tasks: Int, _ body: (Int, Int) -> Void) {
    let workers = max(1, min(workers, tasks))
    if workers == 1 {
        for task in 0..<tasks { body(task, 0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // Workers touch disjoint tasks and their own storage; callers guarantee the rest.
        let shared = UncheckedSendableBox(body)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for task in (worker * tasks / workers)..<((worker + 1) * tasks / workers) { shared.value(task, worker) }
        }
    }
}

/// Runs `body` with OpenBLAS limited to one thread (each of the engine's own threads then
/// calls it independently), restoring the engine's thread count afterwards.
public func withSingleThreadedBLAS<Result>(_ body: () throws -> Result) rethrows -> Result {
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(EngineThreads.count)) }
    return try body()
}
