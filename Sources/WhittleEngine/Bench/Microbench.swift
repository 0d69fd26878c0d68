import COpenBLAS
import Foundation

/// Measures how close Whittle's pointwise (1x1) convolutions come to the raw `cblas_sgemm`
/// throughput of this machine, on shapes taken from EfficientNet-Lite0.
public enum Microbench {
    public struct Row: Sendable, Codable {
        public var label: String
        public var flops: Double
        public var convGFLOPS: Double
        public var sgemmGFLOPS: Double
        public var ratio: Double { sgemmGFLOPS > 0 ? convGFLOPS / sgemmGFLOPS : 0 }
    }

    /// (batch, in channels, out channels, height, width) of representative 1x1 convs.
    public static let pointwiseShapes: [(Int, Int, Int, Int, Int)] = [
        (32, 32, 16, 112, 112), (32, 144, 24, 56, 56), (32, 240, 80, 14, 14), (32, 672, 192, 7, 7), (1, 96, 24, 56, 56),
    ]

    public static func pointwise(repeats: Int = 10) throws -> [Row] {
        try pointwiseShapes.map { batch, inChannels, outChannels, height, width in
            var generator = SystemRandomNumberGenerator()
            let weights = (0..<(outChannels * inChannels)).map { _ in Float.random(in: -1...1, using: &generator) }
            let graph = Graph(
                name: "pointwise",
                nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["kernel_shape": .ints([1, 1])])],
                initializers: ["w": Tensor(shape: [outChannels, inChannels, 1, 1], floats: weights)],
                inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(inChannels), .fixed(height), .fixed(width)])],
                outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(outChannels), .fixed(height), .fixed(width)])])
            let plan = try Plan(graph: graph, batchSize: batch)
            if let input = plan.inputBuffer("x") { for index in input.indices { input[index] = Float(index % 7) * 0.1 } }
            let flops = 2.0 * Double(batch * outChannels * inChannels * height * width)
            plan.execute()
            let convSeconds = medianSeconds(repeats) { plan.execute() }

            // Raw sgemm on the same problem: one (outC x inC) * (inC x HW) product per image.
            let spatial = height * width
            var a = weights
            var b = [Float](repeating: 0.5, count: batch * inChannels * spatial)
            var c = [Float](repeating: 0, count: batch * outChannels * spatial)
            let sgemmSeconds = medianSeconds(repeats) {
                a.withUnsafeMutableBufferPointer { a in
                    b.withUnsafeMutableBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            guard let aBase = a.baseAddress, let bBase = b.baseAddress, let cBase = c.baseAddress else { return }
                            for image in 0..<batch {
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(spatial), Int32(inChannels),
                                            1, aBase, Int32(inChannels), bBase + image * inChannels * spatial, Int32(spatial),
                                            0, cBase + image * outChannels * spatial, Int32(spatial))
                            }
                        }
                    }
                }
            }
            return Row(label: "1x1 conv \(inChannels)->\(outChannels) @\(height)x\(width) batch \(batch)", flops: flops,
                       convGFLOPS: flops / convSeconds / 1e9, sgemmGFLOPS: flops / sgemmSeconds / 1e9)
        }
    }

    /// GFLOP/s of one square `size`^3 `cblas_sgemm` (median of `repeats`): the machine's BLAS
    /// peak the pointwise rows are judged against.
    public static func sgemmPeak(size: Int = 1024, repeats: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: size * size), b = [Float](repeating: 0.25, count: size * size)
        var c = [Float](repeating: 0, count: size * size)
        let seconds = medianSeconds(repeats) {
            c.withUnsafeMutableBufferPointer { c in
                guard let cBase = c.baseAddress else { return }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(size), Int32(size), Int32(size),
                            1, a, Int32(size), b, Int32(size), 0, cBase, Int32(size))
            }
        }
        return 2 * Double(size * size * size) / seconds / 1e9
    }

    /// Median seconds of `repeats` runs of `body` after one untimed run.
    public static func medianSeconds(_ repeats: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        body()
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = clock.now
            body()
            let elapsed = clock.now - start
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        times.sort()
        return times[times.count / 2]
    }
}

extension Microbench {
    /// One distinct GEMM shape of a model's convolutions and what raw `cblas_sgemm` needs for it.
    public struct GemmFloorRow: Sendable, Codable {
        /// Layers with this shape, in execution order.
        public var layers: [String]
        /// Per group: `Y[m x n] = W[m x k] * cols[k x n]`, `n` = output positions of one image.
        public var m: Int, k: Int, n: Int, groups: Int
        /// Median seconds of one layer's product over the batch: one call per image and group,
        /// and one call per group with every image's columns side by side.
        public var perImageSeconds: Double
        public var wholeBatchSeconds: Double
        /// The faster of the two, for one layer.
        public var floorSeconds: Double { min(perImageSeconds, wholeBatchSeconds) }
    }

    /// The time OpenBLAS alone needs for the GEMMs of a model's non-depthwise convolutions at
    /// `batchSize` (after BatchNorm folding, as the plan runs them): a lower bound for any
    /// im2col/GEMM engine on this BLAS, to set against the model's measured run time. The
    /// operands are random and already laid out (no im2col, bias or activation); each distinct
    /// shape is timed once (median of `repeats`) and counted once per layer that has it.
    public static func gemmFloor(graph: Graph, batchSize: Int, dimensions: [String: Int] = [:],
                                 repeats: Int = 3) throws -> [GemmFloorRow] {
        let analysis = try GraphAnalysis(graph: CompileOptions().prepare(graph), batchSize: batchSize, dimensions: dimensions)
        var rows: [GemmFloorRow] = []
        var rowOfShape: [[Int]: Int] = [:]
        for runtime in analysis.runtimeNodes where runtime.node.opType == "Conv" {
            guard let layout = try? LinearConv.layout(runtime.context),
                  !(layout.groups == layout.inChannels && layout.groups > 1) else { continue }
            let win = layout.window
            let m = layout.outChannels / layout.groups, k = layout.inChannels / layout.groups * win.kH * win.kW
            let key = [m, k, win.outPlane, layout.groups]
            if let index = rowOfShape[key] { rows[index].layers.append(runtime.node.name); continue }
            rowOfShape[key] = rows.count
            rows.append(GemmFloorRow(layers: [runtime.node.name], m: m, k: k, n: win.outPlane, groups: layout.groups,
                                     perImageSeconds: 0, wholeBatchSeconds: 0))
        }
        var generator = SplitMix64(seed: 0x5eed)
        for index in rows.indices {
            let row = rows[index]
            let a = (0..<(row.groups * row.m * row.k)).map { _ in Float(generator.nextUnit() * 2 - 1) }
            let b = (0..<(row.groups * row.k * row.n * batchSize)).map { _ in Float(generator.nextUnit() * 2 - 1) }
            var c = [Float](repeating: 0, count: row.groups * row.m * row.n * batchSize)
            func gemm(_ columns: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(row.m), Int32(columns), Int32(row.k),
                            1, a, Int32(row.k), b, Int32(columns), 0, c, Int32(columns))
            }
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        guard let aBase = a.baseAddress, let bBase = b.baseAddress, let cBase = c.baseAddress else { return }
                        rows[index].perImageSeconds = medianSeconds(repeats) {
                            for image in 0..<batchSize {
                                for group in 0..<row.groups {
                                    let slice = image * row.groups + group
                                    gemm(row.n, aBase + group * row.m * row.k, bBase + slice * row.k * row.n,
                                         cBase + slice * row.m * row.n)
                                }
                            }
                        }
                        rows[index].wholeBatchSeconds = medianSeconds(repeats) {
                            for group in 0..<row.groups {
                                gemm(row.n * batchSize, aBase + group * row.m * row.k, bBase + group * row.k * row.n * batchSize,
                                     cBase + group * row.m * row.n * batchSize)
                            }
                        }
                    }
                }
            }
        }
        return rows
    }
}
