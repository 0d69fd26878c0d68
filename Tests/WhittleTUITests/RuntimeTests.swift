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
        let fake = WorkbenchServices(autoSelect: { target, _, context in
            for step in 1...3 {
                context.report(phase: "scoring", completed: step, total: 3)
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
