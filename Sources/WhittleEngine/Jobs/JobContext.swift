import Synchronization

/// One progress report from a long computation: which phase, how far along, and an optional
/// human-readable detail (e.g. the layer being scored).
public struct ProgressEvent: Sendable, Equatable {
    public var phase: String
    public var completed: Int
    public var total: Int
    public var detail: String?

    public init(phase: String, completed: Int, total: Int, detail: String? = nil) {
        self.phase = phase
        self.completed = completed
        self.total = total
        self.detail = detail
    }

    /// Completed share in 0...1 (0 when the total is unknown).
    public var fraction: Double { total > 0 ? min(1, max(0, Double(completed) / Double(total))) : 0 }
}

/// A flag any thread may raise to ask a running computation to stop at its next check.
public final class CancellationFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    public init() {}

    public func cancel() { raised.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { raised.load(ordering: .relaxed) }
}

/// What a long computation (calibration, sweeps, AdaRound, greedy search, export) is handed:
/// where to report progress and how to learn it should stop. Library code calls `report` and
/// `checkCancellation()` between batches or layers; the CLI turns reports into a progress bar,
/// the workbench into its jobs panel.
public struct JobContext: Sendable {
    public let cancellation: CancellationFlag
    private let sink: @Sendable (ProgressEvent) -> Void

    public init(cancellation: CancellationFlag = CancellationFlag(),
                progress: @escaping @Sendable (ProgressEvent) -> Void = { _ in }) {
        self.cancellation = cancellation
        self.sink = progress
    }

    /// A context that reports nowhere and is never cancelled.
    public static var silent: JobContext { JobContext() }

    public var isCancelled: Bool { cancellation.isCancelled }

    public func report(_ event: ProgressEvent) { sink(event) }

    public func report(phase: String, completed: Int, total: Int, detail: String? = nil) {
        sink(ProgressEvent(phase: phase, completed: completed, total: total, detail: detail))
    }

    /// Throws `WhittleError(.cancelled, ...)` once cancellation has been requested.
    public func checkCancellation(_ what: String = "job") throws(WhittleError) {
        if cancellation.isCancelled { throw WhittleError(.cancelled, what, "cancelled") }
    }
}
