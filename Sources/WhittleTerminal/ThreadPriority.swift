@preconcurrency import Glibc
import Foundation

/// Keeps the terminal thread ahead of background work on a busy machine: every other thread
/// of the process (job threads, the OpenBLAS pool, dispatch workers) is moved to a lower
/// scheduling priority (nice +10), so a keypress wakes a thread that gets a core at once
/// instead of waiting its turn behind the job's own threads. Threads those create inherit it.
enum ThreadPriority {
    /// The nice value background threads get.
    static let backgroundNice: Int32 = 10

    /// The calling thread's kernel id (`/proc/thread-self` links to `PID/task/TID`); -1 when unknown.
    static var currentThread: Int32 {
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"),
              let last = link.split(separator: "/").last, let tid = Int32(last) else { return -1 }
        return tid
    }

    /// Lowers every thread of the process except `keep` to `backgroundNice` (never raises one).
    /// Returns how many threads were lowered.
    @discardableResult
    static func lowerOthers(keep: Int32) -> Int {
        guard keep > 0, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return 0 }
        var lowered = 0
        for entry in entries {
            guard let tid = Int32(entry), tid != keep else { continue }
            errno = 0
            let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid))
            if errno != 0 || current >= backgroundNice { continue }
            if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), backgroundNice) == 0 { lowered += 1 }
        }
        return lowered
    }
}
