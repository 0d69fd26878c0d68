/// Signal-to-quantization-noise ratio in dB: `10 * log10(Σ ref² / Σ (ref - test)²)`.
///
/// Returns +Inf when the two agree exactly (no noise), -Inf when the reference is all zero
/// but the test is not, and NaN when the counts differ or both are empty. Sums run in Double.
public func sqnr(reference: [Float], test: [Float]) -> Double {
    guard reference.count == test.count, !reference.isEmpty else { return .nan }
    var signal = 0.0
    var noise = 0.0
    for i in reference.indices {
        let r = Double(reference[i])
        let d = r - Double(test[i])
        signal += r * r
        noise += d * d
    }
    if noise == 0 { return .infinity }
    return 10 * log10(signal / noise)
}

/// Fraction (0...1) of rows of `[N, classCount]` outputs whose arg-max class agrees
/// (ties: the first maximal class). NaN when the counts differ, are not a multiple of
/// `classCount`, or are empty.
public func top1Agreement(reference: [Float], test: [Float], classCount: Int) -> Double {
    guard classCount > 0, reference.count == test.count, !reference.isEmpty,
          reference.count % classCount == 0 else { return .nan }
    let rows = reference.count / classCount
    var agree = 0
    for row in 0..<rows {
        let start = row * classCount
        if argmax(reference, start, classCount) == argmax(test, start, classCount) { agree += 1 }
    }
    return Double(agree) / Double(rows)
}

private func argmax(_ values: [Float], _ start: Int, _ count: Int) -> Int {
    var best = 0
    var bestValue = values[start]
    for i in 1..<count where values[start + i] > bestValue || (bestValue.isNaN && !values[start + i].isNaN) {
        best = i
        bestValue = values[start + i]
    }
    return best
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
