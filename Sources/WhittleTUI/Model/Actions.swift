import Foundation
import WhittleEngine
import WhittleSession

/// Everything that can happen to the workbench.
public enum WorkbenchAction: Sendable, Equatable {
    case key(Key)
    case mouse(MouseEvent)
    case resize(Size)
    /// Periodic tick while jobs run (spinner and elapsed times).
    case tick
    case jobStarted(id: Int)
    case jobProgress(id: Int, ProgressEvent, secondsRemaining: Double?)
    /// Scores a running auto-select measured for one layer (before its result).
    case jobScores(id: Int, ScoreUpdate)
    case jobFinished(id: Int, JobResult)
    case jobFailed(id: Int, message: String)
    case jobCancelled(id: Int)
    /// A message from the runtime (e.g. a file could not be written).
    case message(StatusMessage)
    /// The periodic autosave timer fired (the runtime sends it every
    /// `Workbench.autosaveInterval` seconds): autosave the session when it changed.
    case autosaveTimer
    /// An autosave the runtime was asked for was written (or failed with `error`).
    case autosaved(path: String, error: String?)
}

/// What `update` asks the outside world to do.
public enum WorkbenchEffect: Sendable, Equatable {
    /// Start a job; `id` is the workbench's id for it (job events carry it back).
    case startJob(id: Int, JobRequest)
    case cancelJob(id: Int)
    /// Write a small file (a session profile) atomically.
    case writeFile(path: String, contents: Data)
    /// Write `session` atomically to the autosave sibling of the profile at `profile`
    /// (`NAME.autosave.json`); the runtime answers with `.autosaved`.
    case autosave(profile: String, session: Session)
    /// Repaint every cell (Ctrl-L).
    case redraw
    case quit
}
