import Foundation
import Synchronization
import WhittleEngine
import WhittleIO
import WhittleSession

/// Carries out effects: starts and cancels jobs on a `JobRunner` (each on its own thread)
/// and writes files. Job events come back through `post` as `WorkbenchAction`s, from the job
/// threads; the terminal loop queues them and wakes up (self-pipe).
public final class WorkbenchRuntime: Sendable {
    public let services: WorkbenchServices
    private let runner: JobRunner<JobResult>
    /// Runner job id → workbench job id. The runner numbers jobs 1, 2, 3… in start order and
    /// only this runtime starts them, so the mapping is recorded before each start.
    private let ids = JobIDTable()

    private let post: @Sendable (WorkbenchAction) -> Void

    public init(services: WorkbenchServices, post: @escaping @Sendable (WorkbenchAction) -> Void) {
        self.services = services
        self.post = post
        let ids = self.ids
        runner = JobRunner<JobResult>(progressInterval: .milliseconds(50)) { event in
            guard let id = ids.mutex.withLock({ $0.map[event.job.rawValue] }) else { return }
            switch event.kind {
            case .started: post(.jobStarted(id: id))
            case .progress(let progress, let remaining): post(.jobProgress(id: id, progress, secondsRemaining: remaining))
            case .finished(let result): post(.jobFinished(id: id, result))
            case .failed(let error): post(.jobFailed(id: id, message: JobRunner<JobResult>.describe(error)))
            case .cancelled: post(.jobCancelled(id: id))
            }
        }
    }

    /// Performs one effect. Returns an action to feed back (a message) when the effect
    /// finished at once with something to say. `.quit` and `.redraw` are the caller's.
    @discardableResult
    public func perform(_ effect: WorkbenchEffect) -> WorkbenchAction? {
        switch effect {
        case .startJob(let id, let request):
            let services = self.services
            ids.mutex.withLock { state in
                state.started += 1
                state.map[state.started] = id
            }
            let post = self.post
            runner.start(request.title) { context in
                try services.run(request, context: context) { update in post(.jobScores(id: id, update)) }
            }
            return nil
        case .cancelJob(let id):
            let runnerID = ids.mutex.withLock { state in state.map.first { $0.value == id }?.key }
            if let runnerID { runner.cancel(JobID(rawValue: runnerID)) }
            return nil
        case .writeFile(let path, let contents):
            do {
                try AtomicFile.write(contents, to: URL(fileURLWithPath: path))
                return nil
            } catch {
                return .message(StatusMessage("cannot write \(path): \(JobRunner<JobResult>.describe(error))", .error))
            }
        case .autosave(let profile, let session):
            do {
                try SessionProfile.autosave(session, for: URL(fileURLWithPath: profile))
                return .autosaved(path: SessionProfile.autosaveURL(for: URL(fileURLWithPath: profile)).path, error: nil)
            } catch {
                return .autosaved(path: SessionProfile.autosaveURL(for: URL(fileURLWithPath: profile)).path,
                                  error: JobRunner<JobResult>.describe(error))
            }
        case .redraw, .quit:
            return nil
        }
    }

    /// Asks every job to stop and waits up to `timeout` for them.
    public func shutdown(timeout: Duration = .seconds(2)) {
        runner.cancelAll()
        let deadline = ContinuousClock.now + timeout
        while !runner.running.isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
    }

    public var hasRunningJobs: Bool { !runner.running.isEmpty }
}

/// Runner job ids and workbench job ids, shared with the runner's event callback.
final class JobIDTable: Sendable {
    let mutex = Mutex<(started: Int, map: [Int: Int])>((0, [:]))
}
