import Foundation
import Synchronization
import Testing
import WhittleEngine
import WhittleIO
import WhittleSession
@testable import WhittleTUI

final class ActionLog: Sendable {
    let actions = Mutex<[WorkbenchAction]>([])
    func append(_ action: WorkbenchAction) { actions.withLock { $0.append(action) } }
    var all: [WorkbenchAction] { actions.withLock { $0 } }

    /// Waits (up to 5 s) until `done` holds for the log.
    func wait(_ done: ([WorkbenchAction]) -> Bool) -> Bool {
        for _ in 0..<500 {
            if done(all) { return true }
            usleep(10_000)
        }
        return false
    }
}

func isTerminal(_ action: WorkbenchAction) -> Bool {
    switch action {
    case .jobFinished, .jobFailed, .jobCancelled: return true
    default: return false
    }
}

@Suite("Workbench runtime and services")
struct RuntimeTests {
    @Test func fakeAutoSelectRunsThroughTheRuntimeIntoTheState() throws {
        let fake = WorkbenchServices(autoSelect: { target, _, context, scores in
            for step in 1...3 {
                context.report(phase: "scoring", completed: step, total: 3)
                scores(ScoreUpdate(metric: "accuracy", baseline: 1, technique: .spatialSVD, layer: "stem",
                                   points: [ScorePoint(ratio: 0.5, score: Double(step) / 4)], layersDone: step, layersTotal: 3))
                try context.checkCancellation()
            }
            return CompressionOutcome(ratios: ["stem": target], metrics: SessionMetrics(macs: 10, parameters: 5))
        })
        let log = ActionLog()
        let runtime = WorkbenchRuntime(services: fake) { log.append($0) }
        var state = try makeState(capabilities: fake.capabilities)
        var effects: [WorkbenchEffect]
        (state, effects) = press([.character("3"), .character("a")], on: state)
        for effect in effects { runtime.perform(effect) }
        #expect(log.wait { $0.contains(where: isTerminal) })
        for action in log.all { state = Workbench.update(state, action).0 }
        #expect(state.jobs.first?.phase == .finished)
        #expect(state.session.compression.ratios == ["stem": 0.5])
        #expect(state.exactCompression?.macs == 10)
        #expect(log.all.contains { if case .jobProgress(_, let event, _) = $0 { return event.completed == 3 } else { return false } })
        // Scores arrive as actions before the result.
        let order = log.all.compactMap { action -> String? in
            switch action {
            case .jobScores(_, let update): return "scores \(update.layersDone)"
            case .jobFinished: return "finished"
            default: return nil
            }
        }
        #expect(order == ["scores 1", "scores 2", "scores 3", "finished"])
        #expect(state.session.scores.score(technique: .spatialSVD, layer: "stem", ratio: 0.5) == 0.75)
    }

    @Test func autosaveEffectWritesTheAutosaveSiblingAtomically() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-autosave-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("tuning.json")
        let runtime = WorkbenchRuntime(services: WorkbenchServices()) { _ in }
        var session = Session(modelPath: directory.appendingPathComponent("m.onnx").path)
        try SessionProfile.save(session, to: profile)
        Thread.sleep(forTimeInterval: 0.05)
        session.compression.ratios["conv"] = 0.5
        let reply = runtime.perform(.autosave(profile: profile.path, session: session))
        #expect(reply == .autosaved(path: SessionProfile.autosaveURL(for: profile).path, error: nil))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["tuning.autosave.json", "tuning.json"],
                "no temporary files left behind")
        // The profile itself is untouched; loading it recovers the newer autosave.
        #expect(try SessionProfile.load(from: profile, useNewerAutosave: false).session.compression.ratios.isEmpty)
        let loaded = try SessionProfile.load(from: profile)
        #expect(loaded.recoveredFromAutosave && loaded.session.compression.ratios == ["conv": 0.5])
        // An unwritable place comes back as an error for the status bar.
        if case .autosaved(_, let error) = runtime.perform(.autosave(profile: "/nonexistent-dir/p.json", session: session)) {
            #expect(error != nil)
        } else {
            Issue.record("expected .autosaved")
        }
    }

    @Test func frameStatisticsSummaries() {
        #expect(FrameStatistics.summary([]) == nil)
        let s = FrameStatistics.summary([5, 1, 3, 2, 4])
        #expect(s?.median == 3 && s?.p95 == 5 && s?.max == 5)
        let many = FrameStatistics.summary((1...100).map(Double.init))
        #expect(many?.median == 50.5 && many?.p95 == 95 && many?.max == 100)
        var stats = FrameStatistics()
        stats.record(inputLatency: 2, jobsRunning: false)
        stats.record(inputLatency: 9, jobsRunning: true)
        stats.startupMilliseconds = 120
        #expect(stats.idle == [2] && stats.busy == [9])
        #expect(stats.report.contains("startup to first frame: 120.0 ms"))
        #expect(stats.report.contains("input to frame, job running: 1 frames, median 9.00 ms, p95 9.00 ms, max 9.00 ms"))
    }

    @Test func cancellationAndFailureComeBackAsActions() throws {
        let gate = CancellationFlag()
        let fake = WorkbenchServices(evaluate: { _, context in
            while !context.isCancelled && !gate.isCancelled { usleep(1000) }
            try context.checkCancellation()
            throw WhittleError(.invalidData, "data", "broken")
        })
        let log = ActionLog()
        let runtime = WorkbenchRuntime(services: fake) { log.append($0) }
        runtime.perform(.startJob(id: 7, .evaluate(settings: SessionSettings())))
        runtime.perform(.cancelJob(id: 7))
        #expect(log.wait { $0.contains(.jobCancelled(id: 7)) })
        gate.cancel()
        runtime.perform(.startJob(id: 8, .evaluate(settings: SessionSettings())))
        #expect(log.wait { $0.contains(.jobFailed(id: 8, message: "data: broken")) })
        let missing = runtime.perform(.writeFile(path: "/nonexistent-dir/x.json", contents: Data()))
        if case .message(let message) = missing { #expect(message.level == .error) } else { Issue.record("expected an error message") }
    }

    @Test func liveServicesEvaluateAndExportTheFloatModel() throws {
        let graph = residualGraph()
        let model = try ModelSummary(graph: graph, path: "m.onnx")
        var generator = SplitMix64(seed: 3)
        let inputs = Tensor(shape: [20, 1, 16, 16], floats: (0..<20 * 256).map { _ in Float(generator.nextUnit()) })
        let data = try Dataset(inputs: ["x": inputs], labels: (0..<20).map { $0 % 10 })
        let services = WorkbenchServices.live(graph: graph, model: model, evaluation: data, calibration: data, batchSize: 8)
        #expect(services.capabilities == [.evaluate, .activationStatistics, .export(.onnx)])
        let result = try services.run(.evaluate(settings: SessionSettings()), context: .silent)
        guard case .evaluation(let metrics) = result else { Issue.record("\(result)"); return }
        #expect(metrics.accuracy != nil && metrics.macs == model.totalMACs)
        var compressed = SessionSettings()
        compressed.compression.ratios["stem"] = 0.5
        #expect(throws: WhittleError.self) { try services.run(.evaluate(settings: compressed), context: .silent) }
        guard case .activationStatistics(let histograms) = try services.run(.activationStatistics, context: .silent) else { Issue.record("no histograms"); return }
        #expect(histograms["block_relu"].map { $0.low >= 0 } == true, "ReLU outputs are non-negative")
        #expect(histograms["block_relu"]?.counts.reduce(0, +) == 20 * 8 * 16 * 16)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-tui-\(UInt32.random(in: 0...UInt32.max)).onnx").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try services.run(.export(.onnx, path: path, session: Session(modelPath: "m.onnx")), context: .silent)
        let reloaded = try ONNXImporter.load(contentsOf: URL(fileURLWithPath: path))
        #expect(reloaded.nodes.count == graph.nodes.count)
        let cancelled = CancellationFlag()
        cancelled.cancel()
        #expect(throws: WhittleError.self) { try services.run(.evaluate(settings: SessionSettings()), context: JobContext(cancellation: cancelled)) }
    }
}
