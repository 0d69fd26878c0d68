import ArgumentParser
import Foundation
import WhittleIO
import WhittleQuant

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure float inference latency and throughput on random inputs (median of repeats).")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Samples per batch.")
    var batch = 1

    @Option(name: .long, help: "Timed repeats (after warm-up).")
    var repeats = 20

    @Option(name: .long, help: "Untimed warm-up runs.")
    var warmup = 3

    @Option(name: .long, parsing: .upToNextOption, help: "Size of a symbolic input dimension, e.g. --dim W=320.")
    var dim: [String] = []

    @Flag(name: .long, help: "Also time every layer and print where the time goes (by op type and the slowest layers); with --threads 1 the times are the thread's CPU time.")
    var profile = false

    @Option(name: .long, help: "How many of the slowest steps --profile lists.")
    var top = 12

    @Option(name: .long, help: "AIMET encodings file: time the quantization simulation instead of float inference.")
    var encodings: String?

    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var model: String
        var batch: Int
        var threads: Int
        var repeats: Int
        var medianMilliseconds: Double
        var p10Milliseconds: Double
        var p90Milliseconds: Double
        var samplesPerSecond: Double
        var planBytes: Int
        var peakResidentBytes: Int?
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard top >= 0 else {
                throw WhittleError(.invalidArgument, "--top", "must be 0 or more, got \(top)")
            }
            guard repeats >= 1, warmup >= 0 else {
                throw WhittleError(.invalidArgument, "--repeats", "needs at least 1 repeat and a non-negative warm-up")
            }
            var dimensions: [String: Int] = [:]
            for entry in dim {
                let parts = entry.split(separator: "=")
                guard parts.count == 2, let size = Int(parts[1]), size >= 1 else {
                    throw WhittleError(.invalidArgument, "--dim", "expected NAME=SIZE, got '\(entry)'")
                }
                dimensions[String(parts[0])] = size
            }
            var graph = try loadModel(model)
            if let encodings { graph = try frozenSimulation(of: graph, encodingsPath: encodings) }
            let plan = try Plan(graph: graph, batchSize: batch, dimensions: dimensions)
            var generator = SplitMix64(seed: 42)
            for name in plan.inputNames {
                guard let buffer = plan.inputBuffer(name) else { continue }
                for index in buffer.indices { buffer[index] = Float(generator.nextUnit() * 2 - 1) }
            }
            for _ in 0..<warmup { plan.execute() }
            let clock = ContinuousClock()
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = clock.now
                plan.execute()
                times.append(seconds(clock.now - start))
            }
            let middle = median(times)
            let report = Report(model: model, batch: batch, threads: EngineThreads.count, repeats: repeats,
                                medianMilliseconds: middle * 1000, p10Milliseconds: percentile(times, 10) * 1000,
                                p90Milliseconds: percentile(times, 90) * 1000,
                                samplesPerSecond: middle > 0 ? Double(batch) / middle : 0,
                                planBytes: plan.totalBytes, peakResidentBytes: peakResidentBytes())
            if profile { printProfile(plan) }
            if engine.json { try printJSON(report); return }
            print(String(format: "%@  batch %d  threads %d  median %.3f ms (p10 %.3f, p90 %.3f)  %.1f samples/s  plan %@%@",
                         model, batch, report.threads, report.medianMilliseconds, report.p10Milliseconds,
                         report.p90Milliseconds, report.samplesPerSecond, formatBytes(plan.totalBytes),
                         report.peakResidentBytes.map { "  peak RSS " + formatBytes($0) } ?? ""))
        }
    }
}

extension Bench {
    /// Per-step median times over the repeats, grouped by op type, plus the slowest steps.
    func printProfile(_ plan: Plan) {
        // On one thread every step runs on the calling thread, so its CPU time is the step's
        // cost without the time slices other processes take on a shared machine.
        let cpuTime = EngineThreads.count == 1
        var samples = [[Double]](repeating: [], count: plan.steps.count)
        for _ in 0..<repeats {
            var last = profileClock(cpuTime: cpuTime)
            plan.execute { index, _ in
                let now = profileClock(cpuTime: cpuTime)
                samples[index].append(now - last)
                last = now
            }
        }
        let medians = samples.map(median)
        let total = max(medians.reduce(0, +), 1e-12)
        var byOp: [String: (Double, Int)] = [:]
        for (step, time) in zip(plan.steps, medians) {
            let key = ([step.opType] + step.fused).joined(separator: "+")
            byOp[key, default: (0, 0)].0 += time
            byOp[key, default: (0, 0)].1 += 1
        }
        print("\(cpuTime ? "thread CPU time" : "time") by op (median per run, sum of steps \(String(format: "%.3f", total * 1000)) ms):")
        for (op, entry) in byOp.sorted(by: { $0.value.0 > $1.value.0 }) {
            print(String(format: "  %-28@ %9.3f ms  %5.1f%%  (%d steps)", op, entry.0 * 1000, 100 * entry.0 / total, entry.1))
        }
        print("slowest steps:")
        for index in medians.indices.sorted(by: { medians[$0] > medians[$1] }).prefix(top) {
            let step = plan.steps[index]
            let shape = step.outputs.first.flatMap { plan.info($0)?.shape } ?? []
            print(String(format: "  %-36@ %-22@ %9.3f ms  %@", step.nodeName, ([step.opType] + step.fused).joined(separator: "+"),
                         medians[index] * 1000, shape.description))
        }
    }
}

/// Seconds on the monotonic clock, or the calling thread's CPU time.
private func profileClock(cpuTime: Bool) -> Double {
    var spec = timespec()
    clock_gettime(cpuTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
}
