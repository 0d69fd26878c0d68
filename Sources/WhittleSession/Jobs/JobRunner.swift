import Foundation
import Synchronization
import WhittleEngine

/// Identifies one job of a runner (increasing from 1).
public struct JobID: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// How a job ended.
public enum JobOutcome<Output: Sendable>: Sendable {
    case finished(Output)
    case failed(any Error)
    case cancelled

    /// The one-line error text of a failed job.
    public var errorMessage: String? {
        guard case .failed(let error) = self else { return nil }
        return describeError(error)
    }
}

/// Where a job is in its life.
public enum JobState: String, Sendable, Equatable {
    case running, finished, failed, cancelled

    public var isDone: Bool { self != .running }
}

/// What a runner tells its listeners about a job, in order: `started`, any number of
/// `progress`, then exactly one of `finished`, `failed`, `cancelled`.
public struct JobEvent<Output: Sendable>: Sendable {
    public enum Kind: Sendable {
        case started
        /// A progress report, with the estimated seconds left in its phase when known.
        case progress(ProgressEvent, secondsRemaining: Double?)
        case finished(Output)
        case failed(any Error)
        case cancelled
    }

    public var job: JobID
    public var name: String
    public var kind: Kind

    /// True for the last event of a job.
    public var isTerminal: Bool {
        switch kind {
        case .started, .progress: return false
        case .finished, .failed, .cancelled: return true
        }
    }
}

/// A job's state for a jobs panel or progress bar, readable at any time.
public struct JobStatus: Sendable, Equatable, Identifiable {
    public var id: JobID
    public var name: String
    public var state: JobState
    /// The latest progress report (nil until the job reports).
    public var progress: ProgressEvent?
    public var secondsRemaining: Double?
    /// Smoothed units per second of the current phase.
    public var rate: Double?
    public var started: Date
    /// Seconds since start (until the end for finished jobs).
    public var elapsed: Double
    public var cancelRequested: Bool
    /// The one-line error of a failed job.
    public var error: String?
}

/// Runs long computations (calibration, sweeps, AdaRound, search, export) each on its own
/// thread — not the cooperative pool, so a job that saturates the cores with BLAS never starves
/// async code — and reports their progress and results.
///
/// Events go to the `onEvent` callback (called on the job's thread: keep it cheap, e.g. append
/// to a queue and write a byte to a self-pipe) and to every stream from `events()`. Any number
/// of jobs may run at once. All members are thread-safe.
public final class JobRunner<Output: Sendable>: Sendable {
    public typealias Work = @Sendable (JobContext) throws -> Output

    private struct Record {
        var name: String
        var cancellation: CancellationFlag
        var state: JobState = .running
        var progress: ProgressEvent?
        var estimator: ETAEstimator
        var started: Date
        var startTime: ContinuousClock.Instant
        var endTime: ContinuousClock.Instant?
        var error: String?
        var lastDelivered: ContinuousClock.Instant?
        var outcome: JobOutcome<Output>?
        let done: DispatchGroup
    }

    private struct State {
        var nextID = 1
        var jobs: [JobID: Record] = [:]
        var order: [JobID] = []
        var streams: [Int: AsyncStream<JobEvent<Output>>.Continuation] = [:]
        var nextStream = 0
    }

    private let state = Mutex(State())
    private let onEvent: (@Sendable (JobEvent<Output>) -> Void)?
    private let progressInterval: Duration
    private let stackSize: Int
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant

    /// - Parameters:
    ///   - progressInterval: progress reports closer together than this (within one phase) are
    ///     folded into the status without an event; the first and last report of a phase
    ///     always produce one. Zero delivers every report.
    ///   - stackSize: stack of each job thread in bytes.
    ///   - onEvent: called on the job's thread for every event; must be cheap and thread-safe.
    public init(progressInterval: Duration = .zero, stackSize: Int = 16 << 20,
                onEvent: (@Sendable (JobEvent<Output>) -> Void)? = nil) {
        self.onEvent = onEvent
        self.progressInterval = progressInterval
        self.stackSize = stackSize
        self.epoch = clock.now
    }

    /// Starts `work` on a new thread and returns its id at once. The closure gets a
    /// `JobContext` whose reports become progress events and whose cancellation flag `cancel`
    /// raises; throwing `WhittleError(.cancelled, ...)` (or anything after cancel was
    /// requested) ends the job as cancelled.
    @discardableResult
    public func start(_ name: String, _ work: @escaping Work) -> JobID {
        let flag = CancellationFlag()
        let group = DispatchGroup()
        group.enter()
        let now = clock.now
        let id = state.withLock { state -> JobID in
            let id = JobID(rawValue: state.nextID)
            state.nextID += 1
            state.jobs[id] = Record(name: name, cancellation: flag, estimator: ETAEstimator(), started: Date(),
                                    startTime: now, done: group)
            state.order.append(id)
            return id
        }
        let context = JobContext(cancellation: flag) { [weak self] event in
            self?.progress(id, event)
        }
        let thread = Thread { [self] in
            self.deliver(JobEvent(job: id, name: name, kind: .started))
            let outcome: JobOutcome<Output>
            do {
                outcome = .finished(try work(context))
            } catch let error as WhittleError where error.kind == .cancelled {
                outcome = .cancelled
            } catch {
                outcome = flag.isCancelled ? .cancelled : .failed(error)
            }
            self.finish(id, name: name, outcome: outcome)
        }
        thread.name = "whittle job \(id.rawValue): \(name)"
        thread.stackSize = stackSize
        thread.start()
        return id
    }

    /// Asks job `id` to stop at its next cancellation check. Returns false when the job is
    /// unknown or already done.
    @discardableResult
    public func cancel(_ id: JobID) -> Bool {
        let flag = state.withLock { state -> CancellationFlag? in
            guard let record = state.jobs[id], record.state == .running else { return nil }
            return record.cancellation
        }
        flag?.cancel()
        return flag != nil
    }

    /// Asks every running job to stop.
    public func cancelAll() {
        let flags = state.withLock { state in state.jobs.values.filter { $0.state == .running }.map(\.cancellation) }
        flags.forEach { $0.cancel() }
    }

    /// Blocks until job `id` has ended and returns how (nil for an unknown id).
    public func wait(_ id: JobID) -> JobOutcome<Output>? {
        guard let group = state.withLock({ $0.jobs[id]?.done }) else { return nil }
        group.wait()
        return state.withLock { $0.jobs[id]?.outcome }
    }

    /// Blocks until every job started so far has ended.
    public func waitAll() {
        let groups = state.withLock { state in state.jobs.values.map(\.done) }
        groups.forEach { $0.wait() }
    }

    /// The outcome of an ended job (nil while it runs or for an unknown id).
    public func outcome(_ id: JobID) -> JobOutcome<Output>? {
        state.withLock { $0.jobs[id]?.outcome }
    }

    /// The status of job `id`.
    public func status(_ id: JobID) -> JobStatus? {
        let now = clock.now
        return state.withLock { state in state.jobs[id].map { Self.status(id, $0, now: now) } }
    }

    /// Every job's status, in start order.
    public var statuses: [JobStatus] {
        let now = clock.now
        return state.withLock { state in state.order.compactMap { id in state.jobs[id].map { Self.status(id, $0, now: now) } } }
    }

    /// Ids of the jobs still running.
    public var running: [JobID] {
        state.withLock { state in state.order.filter { state.jobs[$0]?.state == .running } }
    }

    /// Drops ended jobs from `statuses` (their outcomes are forgotten).
    public func removeEnded() {
        state.withLock { state in
            state.order.removeAll { id in
                guard let record = state.jobs[id], record.state.isDone else { return false }
                state.jobs[id] = nil
                return true
            }
        }
    }

    /// A stream of every event from now on. It ends when the caller stops iterating; events
    /// are buffered without limit, so iterate it for as long as it exists.
    public func events() -> AsyncStream<JobEvent<Output>> {
        let (stream, continuation) = AsyncStream<JobEvent<Output>>.makeStream()
        let key = state.withLock { state -> Int in
            let key = state.nextStream
            state.nextStream += 1
            state.streams[key] = continuation
            return key
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: key) }
        }
        return stream
    }

    // MARK: - Internals

    private func progress(_ id: JobID, _ event: ProgressEvent) {
        let now = clock.now
        let seconds = Self.seconds(now - epoch)
        let interval = progressInterval
        let delivery = state.withLock { state -> (String, Double?)? in
            guard var record = state.jobs[id], record.state == .running else { return nil }
            let newPhase = record.progress?.phase != event.phase || record.progress?.total != event.total
            record.estimator.observe(event, at: seconds)
            record.progress = event
            let isLast = event.total > 0 && event.completed >= event.total
            var deliver = true
            if interval > .zero, !newPhase, !isLast, let last = record.lastDelivered, now - last < interval {
                deliver = false
            }
            if deliver { record.lastDelivered = now }
            state.jobs[id] = record
            return deliver ? (record.name, record.estimator.secondsRemaining) : nil
        }
        if let (name, remaining) = delivery {
            deliver(JobEvent(job: id, name: name, kind: .progress(event, secondsRemaining: remaining)))
        }
    }

    private func finish(_ id: JobID, name: String, outcome: JobOutcome<Output>) {
        let now = clock.now
        let group = state.withLock { state -> DispatchGroup? in
            guard var record = state.jobs[id] else { return nil }
            switch outcome {
            case .finished: record.state = .finished
            case .failed(let error):
                record.state = .failed
                record.error = Self.describe(error)
            case .cancelled: record.state = .cancelled
            }
            record.outcome = outcome
            record.endTime = now
            state.jobs[id] = record
            return record.done
        }
        let kind: JobEvent<Output>.Kind
        switch outcome {
        case .finished(let value): kind = .finished(value)
        case .failed(let error): kind = .failed(error)
        case .cancelled: kind = .cancelled
        }
        deliver(JobEvent(job: id, name: name, kind: kind))
        group?.leave()
    }

    private func deliver(_ event: JobEvent<Output>) {
        onEvent?(event)
        let continuations = state.withLock { Array($0.streams.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    private static func status(_ id: JobID, _ record: Record, now: ContinuousClock.Instant) -> JobStatus {
        JobStatus(id: id, name: record.name, state: record.state, progress: record.progress,
                  secondsRemaining: record.state == .running ? record.estimator.secondsRemaining : nil,
                  rate: record.estimator.rate, started: record.started,
                  elapsed: seconds((record.endTime ?? now) - record.startTime),
                  cancelRequested: record.cancellation.isCancelled, error: record.error)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// One line for any error: a `WhittleError`'s description, else the error's own text.
    public static func describe(_ error: any Error) -> String { describeError(error) }
}

/// One line for any error: a `WhittleError`'s description, else the error's own text.
func describeError(_ error: any Error) -> String {
    if let error = error as? WhittleError { return error.description }
    if let error = error as? LocalizedError, let text = error.errorDescription { return text }
    return String(describing: error)
}
