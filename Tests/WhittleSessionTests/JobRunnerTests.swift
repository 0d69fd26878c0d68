import Foundation
import Synchronization
import Testing
@testable import WhittleSession

/// Collects events from the runner's callback.
final class EventLog<Output: Sendable>: Sendable {
    let events = Mutex<[JobEvent<Output>]>([])
    func append(_ event: JobEvent<Output>) { events.withLock { $0.append(event) } }
    var all: [JobEvent<Output>] { events.withLock { $0 } }
    func of(_ id: JobID) -> [JobEvent<Output>] { all.filter { $0.job == id } }
}

func kindName<Output>(_ event: JobEvent<Output>) -> String {
    switch event.kind {
    case .started: return "started"
    case .progress(let p, _): return "progress \(p.completed)"
    case .finished: return "finished"
    case .failed: return "failed"
    case .cancelled: return "cancelled"
    }
}

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

@Suite struct JobRunnerTests {
    @Test func progressArrivesInOrderThenResult() throws {
        let log = EventLog<Int>()
        let runner = JobRunner<Int>(onEvent: log.append)
        let id = runner.start("count") { context in
            for i in 1...5 {
                try context.checkCancellation()
                context.report(phase: "counting", completed: i, total: 5)
            }
            return 42
        }
        guard case .finished(let value)? = runner.wait(id) else {
            Issue.record("job did not finish")
            return
        }
        #expect(value == 42)
        #expect(log.of(id).map(kindName) == ["started", "progress 1", "progress 2", "progress 3", "progress 4", "progress 5", "finished"])
        #expect(log.of(id).allSatisfy { $0.name == "count" })
        let status = try #require(runner.status(id))
        #expect(status.state == .finished)
        #expect(status.progress?.completed == 5)
        #expect(status.secondsRemaining == nil)
    }

    @Test func cancelStopsAtTheNextCheck() throws {
        let runner = JobRunner<Int>()
        let checksAfterCancel = Atomic<Int>(0)
        let cancelRequested = Atomic<Bool>(false)
        let reachedLoop = DispatchSemaphore(value: 0)
        let id = runner.start("forever") { context in
            var iterations = 0
            reachedLoop.signal()
            while true {
                if cancelRequested.load(ordering: .acquiring) { checksAfterCancel.add(1, ordering: .relaxed) }
                try context.checkCancellation()
                iterations += 1
                usleep(200)
            }
        }
        reachedLoop.wait()
        usleep(5_000)
        cancelRequested.store(true, ordering: .releasing)
        #expect(runner.cancel(id))
        guard case .cancelled? = runner.wait(id) else {
            Issue.record("job not cancelled")
            return
        }
        // The flag is raised after `cancelRequested`, so at most the check in flight plus the
        // one that throws see it.
        #expect(checksAfterCancel.load(ordering: .relaxed) <= 2)
        #expect(runner.status(id)?.state == .cancelled)
        #expect(runner.status(id)?.cancelRequested == true)
        #expect(!runner.cancel(id))  // already done
    }

    @Test func failureCarriesTheError() {
        let log = EventLog<Int>()
        let runner = JobRunner<Int>(onEvent: log.append)
        let whittle = runner.start("bad model") { _ in throw WhittleError(.invalidModel, "m.onnx", "truncated") }
        let other = runner.start("other") { _ in throw Boom() }
        #expect(runner.wait(whittle)?.errorMessage == "m.onnx: truncated")
        #expect(runner.wait(other)?.errorMessage == "boom")
        #expect(runner.status(whittle)?.state == .failed)
        #expect(runner.status(whittle)?.error == "m.onnx: truncated")
        #expect(log.of(whittle).map(kindName) == ["started", "failed"])
        guard case .failed(let error)? = log.of(whittle).last?.kind else {
            Issue.record("no failure event")
            return
        }
        #expect(error as? WhittleError == WhittleError(.invalidModel, "m.onnx", "truncated"))
    }

    @Test func errorAfterCancelCountsAsCancelled() {
        let runner = JobRunner<Int>()
        let gate = DispatchSemaphore(value: 0)
        let id = runner.start("stops its own way") { context in
            gate.wait()
            if context.isCancelled { throw Boom() }
            return 1
        }
        runner.cancel(id)
        gate.signal()
        guard case .cancelled? = runner.wait(id) else {
            Issue.record("expected cancelled")
            return
        }
    }

    @Test func etaFollowsASteadyRate() {
        var estimator = ETAEstimator(timeConstant: 2)
        #expect(estimator.secondsRemaining == nil)
        for step in 0...20 {
            // 10 units per second, reported every 0.1 s (with a little jitter in timing).
            let jitter = step % 2 == 0 ? 0.01 : -0.01
            estimator.observe(ProgressEvent(phase: "sweep", completed: step, total: 100), at: Double(step) * 0.1 + jitter)
        }
        let remaining = estimator.secondsRemaining ?? -1
        #expect(abs(remaining - 8) < 1, "eta \(remaining)")
        // A new phase starts over.
        estimator.observe(ProgressEvent(phase: "export", completed: 0, total: 10), at: 3)
        #expect(estimator.secondsRemaining == nil)
        estimator.observe(ProgressEvent(phase: "export", completed: 5, total: 10), at: 4)
        #expect(estimator.secondsRemaining.map { abs($0 - 1) < 1e-9 } == true)
    }

    @Test func etaSmoothsABurst() {
        var estimator = ETAEstimator(timeConstant: 3)
        for step in 0...10 {
            estimator.observe(ProgressEvent(phase: "p", completed: step, total: 100), at: Double(step))
        }
        #expect(estimator.secondsRemaining.map { abs($0 - 90) < 1e-6 } == true)
        // A burst of 10 units in 10 ms (1000/s) must not make the job look 1000x faster: the
        // recent seconds ran at about 4 units/s, so about 20 s remain.
        estimator.observe(ProgressEvent(phase: "p", completed: 20, total: 100), at: 10.01)
        let remaining = estimator.secondsRemaining ?? 0
        #expect(remaining > 15 && remaining < 40, "eta \(remaining)")
    }

    @Test func etaDoesNotDependOnReportFrequency() {
        var often = ETAEstimator(), rarely = ETAEstimator()
        for step in 0...1000 { often.observe(ProgressEvent(phase: "p", completed: step, total: 5000), at: Double(step) * 0.01) }
        for step in 0...10 { rarely.observe(ProgressEvent(phase: "p", completed: step * 100, total: 5000), at: Double(step)) }
        let a = often.secondsRemaining ?? 0, b = rarely.secondsRemaining ?? 0
        #expect(abs(a - 40) < 1e-6 && abs(b - 40) < 1e-6, "\(a) \(b)")
    }

    @Test func etaIsReportedWhileRunning() {
        let log = EventLog<Int>()
        let runner = JobRunner<Int>(onEvent: log.append)
        let id = runner.start("steady") { context in
            for i in 0...10 {
                context.report(phase: "work", completed: i, total: 20)
                usleep(2_000)
            }
            return 0
        }
        _ = runner.wait(id)
        let etas = log.of(id).compactMap { event -> Double? in
            if case .progress(_, let eta) = event.kind { return eta }
            return nil
        }
        #expect(etas.count >= 9)
        // 10 more units at ~2 ms each: well under a second, and positive.
        #expect(etas.last.map { $0 > 0 && $0 < 1 } == true, "\(etas)")
    }

    @Test func manyJobsRunAtOnce() async {
        let runner = JobRunner<Int>()
        let stream = runner.events()
        let ids = (0..<16).map { n in
            runner.start("job \(n)") { context in
                for i in 0..<10 {
                    try context.checkCancellation()
                    context.report(phase: "p", completed: i + 1, total: 10)
                }
                return n * n
            }
        }
        #expect(Set(ids).count == 16)
        runner.waitAll()
        for (n, id) in ids.enumerated() {
            guard case .finished(let value)? = runner.outcome(id) else {
                Issue.record("job \(n) did not finish")
                continue
            }
            #expect(value == n * n)
        }
        // The stream saw every job start and end, each job's events in order.
        var perJob: [JobID: [String]] = [:]
        var terminal = 0
        for await event in stream {
            perJob[event.job, default: []].append(kindName(event))
            if event.isTerminal { terminal += 1 }
            if terminal == ids.count { break }
        }
        for id in ids {
            #expect(perJob[id] == ["started"] + (1...10).map { "progress \($0)" } + ["finished"])
        }
        #expect(runner.running.isEmpty)
        #expect(runner.statuses.count == 16)
        runner.removeEnded()
        #expect(runner.statuses.isEmpty)
    }

    @Test func progressCanBeThrottled() {
        let log = EventLog<Int>()
        let runner = JobRunner<Int>(progressInterval: .seconds(10), onEvent: log.append)
        let id = runner.start("chatty") { context in
            for i in 1...1000 { context.report(phase: "p", completed: i, total: 1000) }
            return 0
        }
        _ = runner.wait(id)
        // First report of the phase and the final one only.
        #expect(log.of(id).map(kindName) == ["started", "progress 1", "progress 1000", "finished"])
        #expect(runner.status(id)?.progress?.completed == 1000)
    }

    @Test func cancelAllAndUnknownIds() {
        let runner = JobRunner<Int>()
        #expect(runner.wait(JobID(rawValue: 99)) == nil)
        #expect(!runner.cancel(JobID(rawValue: 99)))
        let ids = (0..<3).map { _ in
            runner.start("spin") { context in
                while true {
                    try context.checkCancellation()
                    usleep(100)
                }
            }
        }
        runner.cancelAll()
        for id in ids {
            guard case .cancelled? = runner.wait(id) else {
                Issue.record("not cancelled")
                continue
            }
        }
    }

    @Test func jobsRunOnTheirOwnThreads() {
        let runner = JobRunner<UInt>()
        let caller = UInt(pthread_self())
        let arrived = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        // Both jobs are alive at the same time, so their thread ids cannot be reused.
        let ids = (0..<2).map { _ in
            runner.start("where") { _ in
                arrived.signal()
                release.wait()
                return UInt(pthread_self())
            }
        }
        arrived.wait()
        arrived.wait()
        release.signal()
        release.signal()
        var threads: Set<UInt> = []
        for id in ids {
            guard case .finished(let thread)? = runner.wait(id) else {
                Issue.record("no result")
                return
            }
            threads.insert(thread)
        }
        #expect(threads.count == 2)
        #expect(!threads.contains(caller))
    }
}
