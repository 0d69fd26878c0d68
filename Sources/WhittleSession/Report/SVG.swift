import Foundation

/// Small inline-SVG charts for the report: no scripts, no external assets, every label escaped.
enum SVG {
    /// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
    static let palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C8C00", "#000000"]

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
        var color: String
    }

    /// A line chart with axes, ticks, optional dashed reference line and a legend (for up to
    /// `legendLimit` series; every line also carries its name as a hover title).
    static func lineChart(_ series: [Series], xLabel: String, yLabel: String, xRange: ClosedRange<Double> = 0...1,
                          reference: (value: Double, label: String)? = nil, ariaLabel: String, legendLimit: Int = 16) -> String {
        let width = 640.0, height = 320.0
        let left = 56.0, right = series.count <= legendLimit ? 190.0 : 16.0, top = 14.0, bottom = 44.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var values = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        if let reference, reference.value.isFinite { values.append(reference.value) }
        let (yLow, yHigh) = niceRange(values)
        func x(_ value: Double) -> Double {
            left + (value - xRange.lowerBound) / max(1e-12, xRange.upperBound - xRange.lowerBound) * plotWidth
        }
        func y(_ value: Double) -> Double { top + (1 - (value - yLow) / max(1e-12, yHigh - yLow)) * plotHeight }

        var svg = open(width: width, height: height, ariaLabel: ariaLabel)
        svg += axes(left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight)
        for tick in ticks(xRange.lowerBound, xRange.upperBound) {
            svg += "<line class=\"grid\" x1=\"\(f(x(tick)))\" y1=\"\(f(top))\" x2=\"\(f(x(tick)))\" y2=\"\(f(top + plotHeight))\"/>"
            svg += "<text class=\"tick\" x=\"\(f(x(tick)))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(number(tick))</text>"
        }
        for tick in ticks(yLow, yHigh) {
            svg += "<line class=\"grid\" x1=\"\(f(left))\" y1=\"\(f(y(tick)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(tick)))\"/>"
            svg += "<text class=\"tick\" x=\"\(f(left - 6))\" y=\"\(f(y(tick) + 4))\" text-anchor=\"end\">\(number(tick))</text>"
        }
        svg += "<text class=\"axis-label\" x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
        svg += "<text class=\"axis-label\" transform=\"translate(14 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(HTML.escape(yLabel))</text>"
        if let reference, reference.value.isFinite {
            svg += "<line class=\"reference\" x1=\"\(f(left))\" y1=\"\(f(y(reference.value)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(reference.value)))\"><title>\(HTML.escape(reference.label))</title></line>"
        }
        for item in series {
            let points = item.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !points.isEmpty else { continue }
            let path = points.map { "\(f(x($0.x))),\(f(y($0.y)))" }.joined(separator: " ")
            svg += "<g class=\"series\"><title>\(HTML.escape(item.name))</title>"
            svg += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"1.8\" points=\"\(path)\"/>"
            for point in points {
                svg += "<circle cx=\"\(f(x(point.x)))\" cy=\"\(f(y(point.y)))\" r=\"2.4\" fill=\"\(item.color)\"/>"
            }
            svg += "</g>"
        }
        if series.count <= legendLimit {
            for (index, item) in series.enumerated() {
                let ly = top + 6 + Double(index) * 16
                svg += "<line x1=\"\(f(width - right + 12))\" y1=\"\(f(ly))\" x2=\"\(f(width - right + 30))\" y2=\"\(f(ly))\" stroke=\"\(item.color)\" stroke-width=\"2.5\"/>"
                svg += "<text class=\"legend\" x=\"\(f(width - right + 36))\" y=\"\(f(ly + 4))\">\(HTML.escape(HTML.shorten(item.name, 24)))</text>"
            }
        }
        return svg + "</svg>"
    }

    struct Bar {
        var label: String
        var value: Double
        var color: String
        var note: String
    }

    /// Horizontal bars of values in 0...1 (e.g. kept MAC ratios), one row per item, each with a
    /// faint full-length track so 1 (unchanged) reads at a glance.
    static func barChart(_ bars: [Bar], ariaLabel: String) -> String {
        let rowHeight = 18.0, labelWidth = 200.0, barWidth = 340.0, noteWidth = 150.0, top = 8.0
        let width = labelWidth + barWidth + noteWidth, height = top * 2 + rowHeight * Double(bars.count)
        var svg = open(width: width, height: height, ariaLabel: ariaLabel)
        for (index, bar) in bars.enumerated() {
            let y = top + Double(index) * rowHeight
            let value = bar.value.isFinite ? min(1, max(0, bar.value)) : 0
            svg += "<g><title>\(HTML.escape("\(bar.label): \(bar.note)"))</title>"
            svg += "<text class=\"bar-label\" x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 13))\" text-anchor=\"end\">\(HTML.escape(HTML.shorten(bar.label, 28)))</text>"
            svg += "<rect class=\"track\" x=\"\(f(labelWidth))\" y=\"\(f(y + 3))\" width=\"\(f(barWidth))\" height=\"\(f(rowHeight - 6))\"/>"
            svg += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y + 3))\" width=\"\(f(barWidth * value))\" height=\"\(f(rowHeight - 6))\" fill=\"\(bar.color)\"/>"
            svg += "<text class=\"bar-note\" x=\"\(f(labelWidth + barWidth + 8))\" y=\"\(f(y + 13))\">\(HTML.escape(bar.note))</text></g>"
        }
        return svg + "</svg>"
    }

    /// A compact histogram with its range written underneath.
    static func histogram(_ histogram: RangeHistogram, color: String) -> String {
        let width = 280.0, height = 120.0, left = 6.0, top = 6.0, plotWidth = width - 12, plotHeight = 80.0
        let peak = Double(histogram.counts.max() ?? 0)
        let binWidth = plotWidth / Double(max(1, histogram.counts.count))
        var svg = open(width: width, height: height,
                       ariaLabel: "\(histogram.kind.rawValue) histogram of \(histogram.tensor)")
        svg += "<rect class=\"frame\" x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\"/>"
        for (index, count) in histogram.counts.enumerated() where count > 0 {
            // Square-root heights keep the tails visible next to a tall peak.
            let barHeight = peak > 0 ? (Double(count) / peak).squareRoot() * plotHeight : 0
            svg += "<rect x=\"\(f(left + Double(index) * binWidth))\" y=\"\(f(top + plotHeight - barHeight))\" width=\"\(f(max(0.5, binWidth - 0.5)))\" height=\"\(f(barHeight))\" fill=\"\(color)\"/>"
        }
        if histogram.minimum < 0, histogram.maximum > 0 {
            let zero = left + Double(-histogram.minimum / (histogram.maximum - histogram.minimum)) * plotWidth
            svg += "<line class=\"zero\" x1=\"\(f(zero))\" y1=\"\(f(top))\" x2=\"\(f(zero))\" y2=\"\(f(top + plotHeight))\"/>"
        }
        svg += "<text class=\"tick\" x=\"\(f(left))\" y=\"\(f(top + plotHeight + 14))\">\(number(Double(histogram.minimum)))</text>"
        svg += "<text class=\"tick\" x=\"\(f(left + plotWidth))\" y=\"\(f(top + plotHeight + 14))\" text-anchor=\"end\">\(number(Double(histogram.maximum)))</text>"
        svg += "<text class=\"legend\" x=\"\(f(left))\" y=\"\(f(height - 6))\">\(HTML.escape(HTML.shorten(histogram.tensor, 40)))</text>"
        return svg + "</svg>"
    }

    // MARK: - Helpers

    static func open(width: Double, height: Double, ariaLabel: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(f(width))\" height=\"\(f(height))\" role=\"img\" aria-label=\"\(HTML.escape(ariaLabel))\">"
    }

    static func axes(left: Double, top: Double, plotWidth: Double, plotHeight: Double) -> String {
        "<rect class=\"frame\" x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\"/>"
    }

    /// A range with a little headroom around `values` (0...1 when there are none).
    static func niceRange(_ values: [Double]) -> (Double, Double) {
        guard let low = values.min(), let high = values.max() else { return (0, 1) }
        if high - low < 1e-9 { return (low - 0.5, high + 0.5) }
        let pad = (high - low) * 0.05
        return (low - pad, high + pad)
    }

    /// About five round tick values inside `low...high`.
    static func ticks(_ low: Double, _ high: Double) -> [Double] {
        guard high > low, (high - low).isFinite else { return [] }
        let raw = (high - low) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var index = (low / step).rounded(.up)
        var result: [Double] = []
        while index * step <= high + step * 1e-9, result.count < 20 {
            // Twelve significant digits drop the binary noise of index * step (0.6000000000000001).
            let tick = Double(String(format: "%.12g", index * step)) ?? index * step
            result.append(abs(tick) < step * 1e-9 ? 0 : tick)
            index += 1
        }
        return result
    }

    /// Coordinates with one decimal.
    static func f(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        return String(format: "%.1f", value)
    }

    /// A short human number for ticks and labels.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        let magnitude = abs(value)
        if magnitude == 0 { return "0" }
        if magnitude >= 1e6 || magnitude < 1e-3 { return String(format: "%.2g", value) }
        if magnitude >= 100 { return String(format: "%.0f", value) }
        if magnitude >= 10 { return String(format: "%.1f", value) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
