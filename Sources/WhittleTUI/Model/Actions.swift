import Foundation
import WhittleEngine

/// Everything that can happen to the workbench.
public enum WorkbenchAction: Sendable, Equatable {
    case key(Key)
    case mouse(MouseEvent)
    case resize(Size)
    /// Periodic tick while jobs run (spinner and elapsed times).
    case tick
    case jobStarted(id: Int)
    case jobProgress(id: Int, ProgressEvent, secondsRemaining: Double?)
    case jobFinished(id: Int, JobResult)
    case jobFailed(id: Int, message: String)
    case jobCancelled(id: Int)
    /// A message from the runtime (e.g. a file could not be written).
    case message(StatusMessage)
}

/// What `update` asks the outside world to do.
public enum WorkbenchEffect: Sendable, Equatable {
    /// Start a job; `id` is the workbench's id for it (job events carry it back).
    case startJob(id: Int, JobRequest)
    case cancelJob(id: Int)
    /// Write a small file (a session profile) atomically.
    case writeFile(path: String, contents: Data)
    /// Repaint every cell (Ctrl-L).
    case redraw
    case quit
}
