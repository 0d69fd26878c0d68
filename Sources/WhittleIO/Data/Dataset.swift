import Foundation

/// Samples to feed a model: one float32 tensor per model input, batch along dimension 0,
/// and optional integer class labels.
public struct Dataset: Sendable {
    /// Input tensors by model input name, all float32 with the same dimension 0.
    public var inputs: [String: Tensor]
    /// One class label per sample, when the data set has them.
    public var labels: [Int]?
    /// Number of samples (dimension 0 of every input).
    public var sampleCount: Int

    /// Name of the labels array in a data set archive.
    public static let labelsKey = "y"
    /// Name of the input array in a data set archive for a model with exactly one input.
    public static let singleInputKey = "x"

    /// Builds a data set from input tensors (converted to float32) and labels, checking that
    /// every input has a batch dimension, the sample counts agree and there is one label
    /// per sample.
    public init(inputs: [String: Tensor], labels: [Int]? = nil, source: String = "dataset") throws {
        guard !inputs.isEmpty else {
            throw WhittleError(.invalidData, source, "the data set has no inputs")
        }
        var converted: [String: Tensor] = [:]
        var count: Int?
        for name in inputs.keys.sorted() {
            guard let tensor = inputs[name] else { continue }
            guard tensor.rank >= 1 else {
                throw WhittleError(.invalidData, source, "input '\(name)' is 0-d; it needs a batch dimension (dimension 0)")
            }
            let storedCount: Int
            switch tensor.storage {
            case .float(let f): storedCount = f.count
            case .int(let i): storedCount = i.count
            }
            guard storedCount == tensor.count else {
                throw WhittleError(.invalidData, source, "input '\(name)' has shape \(tensor.shape) but holds \(storedCount) elements")
            }
            if let count, count != tensor.shape[0] {
                throw WhittleError(
                    .shapeMismatch, source,
                    "sample counts disagree: \(inputs.keys.sorted().map { "'\($0)' has \(inputs[$0]?.shape.first ?? 0)" }.joined(separator: ", "))")
            }
            count = tensor.shape[0]
            converted[name] = Tensor(shape: tensor.shape, floats: tensor.floats, elementType: .float32)
        }
        let sampleCount = count ?? 0
        if let labels, labels.count != sampleCount {
            throw WhittleError(
                .shapeMismatch, source,
                "there are \(labels.count) labels but \(sampleCount) samples")
        }
        self.inputs = converted
        self.labels = labels
        self.sampleCount = sampleCount
    }

    /// Loads a data set from a `.npz` archive.
    ///
    /// The archive holds each model input under its input name or, when the model has
    /// exactly one input, under `x`. Optional labels are under `y` (unless `y` is itself an
    /// input name): a 1-D array of an integer type, or of a float type holding whole numbers,
    /// with one entry per sample. Inputs are converted to float32.
    public static func load(from url: URL, inputNames: [String]) throws -> Dataset {
        let arrays = try NumPyFile.readArchive(from: url)
        return try Dataset(arrays: arrays, inputNames: inputNames, source: url.path)
    }

    /// Builds a data set from already-loaded archive arrays, with the key rules of `load`.
    public init(arrays: [String: Tensor], inputNames: [String], source: String = "dataset") throws {
        guard !inputNames.isEmpty else {
            throw WhittleError(.invalidArgument, source, "the model has no inputs to feed")
        }
        var inputs: [String: Tensor] = [:]
        for name in inputNames {
            if let tensor = arrays[name] {
                inputs[name] = tensor
            } else if inputNames.count == 1, let tensor = arrays[Dataset.singleInputKey] {
                inputs[name] = tensor
            } else {
                let expected = inputNames.count == 1 && name != Dataset.singleInputKey
                    ? "'\(name)' or '\(Dataset.singleInputKey)'" : "'\(name)'"
                let present = arrays.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw WhittleError(
                    .invalidData, source,
                    "no array for model input '\(name)' (expected key \(expected); the archive holds \(present.isEmpty ? "no arrays" : present))")
            }
        }
        var labels: [Int]?
        if !inputNames.contains(Dataset.labelsKey), let y = arrays[Dataset.labelsKey] {
            labels = try Dataset.labels(from: y, source: source)
        }
        try self.init(inputs: inputs, labels: labels, source: source)
    }

    /// Converts a labels array to class indices.
    static func labels(from y: Tensor, source: String) throws -> [Int] {
        guard y.rank == 1 else {
            throw WhittleError(.invalidData, source, "labels '\(labelsKey)' must be 1-D (one class per sample), got shape \(y.shape)")
        }
        switch y.storage {
        case .int(let ints):
            return ints.map { Int($0) }
        case .float(let floats):
            var result = [Int](repeating: 0, count: floats.count)
            for (i, value) in floats.enumerated() {
                guard let label = Int(exactly: value) else {
                    throw WhittleError(
                        .invalidData, source,
                        "labels '\(labelsKey)' must be whole numbers; element \(i) is \(value)")
                }
                result[i] = label
            }
            return result
        }
    }

    /// Samples `range` of every input (clamped to `0..<sampleCount`), sliced along dimension 0.
    public func batch(_ range: Range<Int>) -> [String: Tensor] {
        let rows = clamped(range)
        var result: [String: Tensor] = [:]
        for (name, tensor) in inputs {
            result[name] = Dataset.slice(tensor, rows: rows)
        }
        return result
    }

    /// Labels of samples `range` (clamped to `0..<sampleCount`), when there are labels.
    public func batchLabels(_ range: Range<Int>) -> [Int]? {
        guard let labels else { return nil }
        return Array(labels[clamped(range)])
    }

    /// The first `n` samples (all of them when there are fewer).
    public func subset(first n: Int) -> Dataset {
        let rows = clamped(0..<max(0, n))
        var copy = self
        copy.inputs = batch(rows)
        copy.labels = batchLabels(rows)
        copy.sampleCount = rows.count
        return copy
    }

    /// Consecutive batch ranges of at most `size` samples covering the data set.
    public func batchRanges(size: Int) -> [Range<Int>] {
        let step = max(1, size)
        return stride(from: 0, to: sampleCount, by: step).map { $0..<min($0 + step, sampleCount) }
    }

    private func clamped(_ range: Range<Int>) -> Range<Int> {
        let lower = min(max(range.lowerBound, 0), sampleCount)
        let upper = min(max(range.upperBound, lower), sampleCount)
        return lower..<upper
    }

    /// Rows `rows` of a float tensor as one contiguous copy.
    static func slice(_ tensor: Tensor, rows: Range<Int>) -> Tensor {
        var shape = tensor.shape
        let rowSize = shape.dropFirst().reduce(1, *)
        shape[0] = rows.count
        let count = rows.count * rowSize
        let source = tensor.floats
        let floats = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            source.withUnsafeBufferPointer { all in
                if let from = all.baseAddress, let to = buffer.baseAddress, count > 0 {
                    to.initialize(from: from + rows.lowerBound * rowSize, count: count)
                }
            }
            initialized = count
        }
        return Tensor(shape: shape, floats: floats, elementType: .float32)
    }
}
