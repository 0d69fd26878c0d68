import Foundation
import WhittleEngine

/// How a compressed model is scored against the float model on the evaluation set. Higher
/// is always better.
public enum CompressionScore: String, Sendable, Codable, CaseIterable {
    /// Top-1 accuracy against the labels `y` (needs labels and a [N, classes] first output).
    case accuracy
    /// Share of samples whose top-1 class equals the float model's (needs a [N, classes] output).
    case agreement
    /// Signal-to-quantization-noise ratio of the first output against the float output, in dB:
    /// 10 log10(sum ref^2 / sum (ref - out)^2) over all samples.
    case sqnr

    /// Short unit for printing.
    public var unit: String { self == .sqnr ? "dB" : "" }

    /// Formats a score of this metric for people: percentages or decibels.
    public func format(_ value: Double) -> String {
        self == .sqnr ? String(format: "%.1f dB", value) : String(format: "%.2f%%", value * 100)
    }
}

/// Every metric measured in one evaluation pass (they come from the same outputs, so one
/// pass fills all three and one cache entry serves every metric).
public struct ScoreValues: Sendable, Codable, Equatable {
    /// Top-1 accuracy (nil without labels or without a classification output).
    public var accuracy: Double?
    /// Top-1 agreement with the float model (nil without a classification output).
    public var agreement: Double?
    /// Output SQNR in dB, clamped to [-100, 200] (200 means identical outputs).
    public var sqnr: Double

    public init(accuracy: Double?, agreement: Double?, sqnr: Double) {
        self.accuracy = accuracy
        self.agreement = agreement
        self.sqnr = sqnr
    }

    /// The value of one metric, when this pass could measure it.
    public func value(_ metric: CompressionScore) -> Double? {
        switch metric {
        case .accuracy: return accuracy
        case .agreement: return agreement
        case .sqnr: return sqnr
        }
    }

    /// Highest SQNR reported (outputs equal to the reference).
    public static let sqnrCeiling = 200.0
    /// Lowest SQNR reported (outputs unrelated to, or far larger than, the reference).
    public static let sqnrFloor = -100.0

    /// 10 log10(signal / noise), clamped, with non-finite noise mapped to the floor.
    public static func sqnr(signal: Double, noise: Double) -> Double {
        guard noise.isFinite else { return sqnrFloor }
        guard noise > 0 else { return sqnrCeiling }
        guard signal > 0 else { return sqnrFloor }
        return min(sqnrCeiling, max(sqnrFloor, 10 * log10(signal / noise)))
    }
}

/// Running totals of one scoring pass, fed batch by batch.
struct ScoreAccumulator {
    var signal = 0.0
    var noise = 0.0
    var agreeing = 0
    var correct = 0
    var samples = 0

    /// Adds one batch of outputs (`rows` samples of `width` values) against the reference
    /// rows starting at sample `first`.
    mutating func add(output: UnsafeBufferPointer<Float>, first: Int, rows: Int, width: Int,
                      reference: [Float], referenceClasses: [Int]?, labels: [Int]?) {
        let base = first * width
        for index in 0..<(rows * width) {
            let expected = Double(reference[base + index])
            let difference = Double(output[index]) - expected
            signal += expected * expected
            noise += difference.isNaN ? Double.infinity : difference * difference
        }
        if let referenceClasses {
            let predicted = argmaxRows(output, rows: rows, width: width)
            for (row, label) in predicted.enumerated() {
                if label == referenceClasses[first + row] { agreeing += 1 }
                if let labels, label == labels[first + row] { correct += 1 }
            }
        }
        samples += rows
    }

    /// Adds the sums of another pass over other samples.
    mutating func merge(_ other: ScoreAccumulator) {
        signal += other.signal
        noise += other.noise
        agreeing += other.agreeing
        correct += other.correct
        samples += other.samples
    }

    func values(classification: Bool, labelled: Bool) -> ScoreValues {
        let count = Double(max(1, samples))
        return ScoreValues(accuracy: classification && labelled ? Double(correct) / count : nil,
                           agreement: classification ? Double(agreeing) / count : nil,
                           sqnr: ScoreValues.sqnr(signal: signal, noise: noise))
    }
}
