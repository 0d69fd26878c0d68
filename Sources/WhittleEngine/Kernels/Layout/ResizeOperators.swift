/// Resize (opset 10-18) and its predecessor Upsample (opset 7-9).
///
/// Each output coordinate `x` of an axis is mapped to an input coordinate `x'` by the
/// `coordinate_transformation_mode` (ONNX Resize spec; `s` is the axis scale, `L` / `O` the
/// input / output lengths):
/// - `half_pixel` (default): `x' = (x + 0.5) / s - 0.5`
/// - `pytorch_half_pixel`: as `half_pixel` when `O > 1`, else `0`
/// - `align_corners`: `x' = x · (L - 1) / (O - 1)` (`0` when `O = 1`)
/// - `asymmetric`: `x' = x / s`
/// - `tf_half_pixel_for_nn`: `x' = (x + 0.5) / s`
///
/// `nearest` then rounds `x'` by `nearest_mode` (`round_prefer_floor` = `ceil(x' - 0.5)`,
/// default; `round_prefer_ceil` = `floor(x' + 0.5)`; `floor`; `ceil`) and clamps to
/// `[0, L - 1]`. `linear` interpolates between `floor(x')` and the next sample with `x'`
/// clamped to `[0, L - 1]` (the spec's edge padding), on the last two dimensions (bilinear).
///
/// With `scales`, `O = floor(L · s)`; with `sizes`, `s = O / L` (opset 18
/// `keep_aspect_ratio_policy` picks one common scale over `axes`). `roi` only matters for
/// `tf_crop_and_resize`, which is not supported. Opset 10 Resize and Upsample use
/// `asymmetric` with `floor` rounding.
extension OperatorRegistry {
    static let resizeSpec = resampleSpec("Resize", settings: resizeSettings)
    static let upsampleSpec = resampleSpec("Upsample", settings: upsampleSettings)

    /// Resize and Upsample share everything but how their settings are read. They are not
    /// marked as data movement: linear mode creates new values (nearest mode would qualify,
    /// but the flag is per operator type).
    static func resampleSpec(_ opType: String, settings: @escaping @Sendable (NodeContext) throws -> ResizeSettings) -> OperatorSpec {
        OperatorSpec(
            opType: opType,
            inferShapes: { context in
                let resolved = try settings(context)
                return [TensorInfo(shape: resolved.outputShape, elementType: try context.dataInput().elementType)]
            },
            makeKernel: { context, _ in
                let resolved = try settings(context)
                switch resolved.mode {
                case .nearest: return LayoutKernel(routine: NearestResizeRoutine(resolved))
                case .linear: return try LinearResizeKernel(resolved, context: context)
                }
            },
            fold: { context in
                let resolved = try settings(context)
                switch resolved.mode {
                case .nearest:
                    return try foldRoutine(NearestResizeRoutine(resolved), context: context, dataInputs: [0],
                                           outputShapes: [resolved.outputShape])
                case .linear:
                    guard let data = context.constant(0) else { throw context.error("input #0 is not a compile-time constant") }
                    let kernel = try LinearResizeKernel(resolved, context: context)
                    let floats = runOnce(kernel: kernel, inputs: [data],
                                         outputInfos: [TensorInfo(shape: resolved.outputShape)])[0]
                    if data.isFloatingPoint {
                        return [Tensor(shape: floats.shape, floats: floats.floats, elementType: data.elementType)]
                    }
                    let rounded = floats.floats.map { Int64($0.rounded()) }
                    return [Tensor(shape: floats.shape, ints: rounded, elementType: data.elementType)]
                }
            })
    }

    /// Settings of a Resize node (opset 10: inputs X, scales; opset ≥ 11: X, roi, scales, sizes).
    @Sendable static func resizeSettings(_ context: NodeContext) throws -> ResizeSettings {
        let shape = try context.dataInput().shape
        let mode = try resampleMode(context)
        if context.opsetVersion < 11 {
            let scales = try context.constantFloats(1, name: "scales")
            return try ResizeSettings(context: context, mode: mode, coordinates: .asymmetric, rounding: .floor,
                                      inputShape: shape, scales: scales, sizes: nil, axes: nil, policy: "stretch")
        }
        let coordinateName = try context.string("coordinate_transformation_mode", default: "half_pixel")
        if coordinateName == "tf_crop_and_resize" {
            throw context.error("coordinate_transformation_mode 'tf_crop_and_resize' (which uses roi) is not supported",
                                kind: .unsupportedOperator)
        }
        guard let coordinates = ResizeSettings.Coordinates(rawValue: coordinateName) else {
            throw context.error("unsupported coordinate_transformation_mode '\(coordinateName)'", kind: .unsupportedOperator)
        }
        let roundingName = try context.string("nearest_mode", default: "round_prefer_floor")
        guard let rounding = ResizeSettings.Rounding(rawValue: roundingName) else {
            throw context.error("unsupported nearest_mode '\(roundingName)'", kind: .unsupportedOperator)
        }
        let axes = context.opsetVersion >= 18 && context.hasAttribute("axes")
            ? try context.normalizedAxes(try context.ints("axes"), rank: shape.count) : nil
        let policy = context.opsetVersion >= 18 ? try context.string("keep_aspect_ratio_policy", default: "stretch") : "stretch"
        let sizesGiven = context.hasInput(3) && (context.inputs[3]?.count ?? 0) > 0
        let scalesGiven = context.hasInput(2) && (context.inputs[2]?.count ?? 0) > 0
        if sizesGiven == scalesGiven {
            throw context.error("exactly one of 'scales' and 'sizes' must be given")
        }
        return try ResizeSettings(
            context: context, mode: mode, coordinates: coordinates, rounding: rounding, inputShape: shape,
            scales: scalesGiven ? try context.constantFloats(2, name: "scales") : nil,
            sizes: sizesGiven ? try context.constantInts(3, name: "sizes") : nil, axes: axes, policy: policy)
    }

    /// Settings of an Upsample node (opset 7-8: `scales` attribute; opset 9: `scales` input).
    @Sendable static func upsampleSettings(_ context: NodeContext) throws -> ResizeSettings {
        let shape = try context.dataInput().shape
        let scales: [Float]
        if context.hasInput(1) {
            scales = try context.constantFloats(1, name: "scales")
        } else if let attribute = try context.floatList("scales") {
            scales = attribute
        } else {
            throw context.error("missing 'scales'")
        }
        return try ResizeSettings(context: context, mode: try resampleMode(context), coordinates: .asymmetric,
                                  rounding: .floor, inputShape: shape, scales: scales, sizes: nil, axes: nil, policy: "stretch")
    }

    static func resampleMode(_ context: NodeContext) throws -> ResizeSettings.Mode {
        let name = try context.string("mode", default: "nearest")
        switch name {
        case "nearest": return .nearest
        case "linear", "bilinear": return .linear
        default: throw context.error("unsupported resize mode '\(name)' (nearest and linear are supported)", kind: .unsupportedOperator)
        }
    }
}

extension NodeContext {
    /// Float list attributes (Upsample-7 `scales`), accepting ints too.
    func floatList(_ name: String) throws -> [Float]? {
        switch node.attributes[name] {
        case .floats(let values)?: return values
        case .float(let value)?: return [value]
        case .ints(let values)?: return values.map(Float.init)
        case nil: return nil
        case let other?: throw error("attribute '\(name)' must be floats, found \(other)")
        }
    }
}

/// Resolved sampling of a Resize/Upsample node: output shape and per-axis scale.
struct ResizeSettings: Sendable {
    enum Mode: Sendable { case nearest, linear }

    enum Coordinates: String, Sendable {
        case halfPixel = "half_pixel", pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric, tfHalfPixelForNN = "tf_half_pixel_for_nn"
    }

    enum Rounding: String, Sendable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }

    let mode: Mode
    let coordinates: Coordinates
    let rounding: Rounding
    let inputShape: [Int]
    let outputShape: [Int]
    /// Scale of each axis used by the coordinate transform.
    let scales: [Double]

    init(context: NodeContext, mode: Mode, coordinates: Coordinates, rounding: Rounding, inputShape: [Int],
         scales: [Float]?, sizes: [Int]?, axes: [Int]?, policy: String) throws {
        self.mode = mode
        self.coordinates = coordinates
        self.rounding = rounding
        self.inputShape = inputShape
        let rank = inputShape.count
        let axes = axes ?? Array(0..<rank)
        var outputShape = inputShape
        var axisScales = [Double](repeating: 1, count: rank)
        if let scales {
            guard scales.count == axes.count else {
                throw context.error("scales has \(scales.count) values for \(axes.count) axes")
            }
            for (axis, scale) in zip(axes, scales) {
                guard scale > 0 else { throw context.error("scale \(scale) must be positive") }
                axisScales[axis] = Double(scale)
                outputShape[axis] = Int((Double(inputShape[axis]) * Double(scale)).rounded(.down))
            }
        } else if let sizes {
            guard sizes.count == axes.count else {
                throw context.error("sizes has \(sizes.count) values for \(axes.count) axes")
            }
            guard sizes.allSatisfy({ $0 > 0 }), axes.allSatisfy({ inputShape[$0] > 0 }) else {
                throw context.error("sizes \(sizes) and input \(inputShape) must be positive", kind: .shapeMismatch)
            }
            let ratios = zip(axes, sizes).map { Double($1) / Double(inputShape[$0]) }
            switch policy {
            case "stretch":
                for (index, axis) in axes.enumerated() {
                    outputShape[axis] = sizes[index]
                    axisScales[axis] = ratios[index]
                }
            case "not_larger", "not_smaller":
                let common = (policy == "not_larger" ? ratios.min() : ratios.max()) ?? 1
                for axis in axes {
                    axisScales[axis] = common
                    outputShape[axis] = Int((common * Double(inputShape[axis])).rounded(.toNearestOrAwayFromZero))
                }
            default:
                throw context.error("unsupported keep_aspect_ratio_policy '\(policy)'", kind: .unsupportedOperator)
            }
        } else {
            throw context.error("missing 'scales'")
        }
        self.outputShape = outputShape
        self.scales = axisScales
    }

    /// The input coordinate sampled for output coordinate `x` along `axis`.
    func sourceCoordinate(_ x: Int, axis: Int) -> Double {
        let scale = scales[axis]
        let inputLength = inputShape[axis]
        let outputLength = outputShape[axis]
        let position = Double(x)
        switch coordinates {
        case .halfPixel: return (position + 0.5) / scale - 0.5
        case .pytorchHalfPixel: return outputLength > 1 ? (position + 0.5) / scale - 0.5 : 0
        case .alignCorners:
            return outputLength == 1 ? 0 : position * Double(inputLength - 1) / Double(outputLength - 1)
        case .asymmetric: return position / scale
        case .tfHalfPixelForNN: return (position + 0.5) / scale
        }
    }

    /// Nearest-mode input index for output coordinate `x` along `axis`. An axis that keeps
    /// its length with scale 1 maps to itself (otherwise `tf_half_pixel_for_nn` with ceiling
    /// rounding would shift batch and channel axes by one).
    func nearestIndex(_ x: Int, axis: Int) -> Int {
        if scales[axis] == 1 && inputShape[axis] == outputShape[axis] { return x }
        let source = sourceCoordinate(x, axis: axis)
        let rounded: Double
        switch rounding {
        case .roundPreferFloor: rounded = (source - 0.5).rounded(.up)
        case .roundPreferCeil: rounded = (source + 0.5).rounded(.down)
        case .floor: rounded = source.rounded(.down)
        case .ceil: rounded = source.rounded(.up)
        }
        let limit = Double(max(0, inputShape[axis] - 1))
        return Int(min(max(rounded, 0), limit))
    }
}

/// Nearest-neighbour resampling through per-axis index maps.
///
/// The last two axes are the rows and columns of each plane (a 1-d input is one row).
/// Output rows that sample the same input row are written once and copied; when the
/// columns repeat by an integer factor (Upsample-style integer scaling) each input value is
/// written that many times without a lookup.
struct NearestResizeRoutine: LayoutRoutine {
    /// Output shape of the leading axes, their index maps and input strides.
    let outerShape: [Int]
    let outerMaps: [Int]
    let outerMapStarts: [Int]
    let outerStrides: [Int]
    let inputRows: Int
    let inputColumns: Int
    let outputRows: Int
    let outputColumns: Int
    let columnMap: [Int]
    /// Input column repeat factor when `columnMap[j] == j / factor` everywhere, else 0.
    let columnRepeat: Int
    /// Runs of output rows sampling one input row: first output row, run length, input row.
    let rowRunStarts: [Int]
    let rowRunLengths: [Int]
    let rowRunSources: [Int]

    init(_ settings: ResizeSettings) {
        // View the tensor as [outer…, rows, columns], adding unit axes for ranks below 2.
        let padding = max(0, 2 - settings.inputShape.count)
        let inputShape = [Int](repeating: 1, count: padding) + settings.inputShape
        let outputShape = [Int](repeating: 1, count: padding) + settings.outputShape
        let rank = inputShape.count
        func index(_ x: Int, _ axis: Int) -> Int {
            axis < padding ? 0 : settings.nearestIndex(x, axis: axis - padding)
        }
        let strides = contiguousStrides(inputShape)
        var outerMaps: [Int] = []
        var outerMapStarts: [Int] = []
        for axis in 0..<(rank - 2) {
            outerMapStarts.append(outerMaps.count)
            for x in 0..<outputShape[axis] { outerMaps.append(index(x, axis)) }
        }
        self.outerShape = Array(outputShape[..<(rank - 2)])
        self.outerMaps = outerMaps
        self.outerMapStarts = outerMapStarts
        self.outerStrides = Array(strides[..<(rank - 2)])
        inputRows = inputShape[rank - 2]
        inputColumns = inputShape[rank - 1]
        outputRows = outputShape[rank - 2]
        outputColumns = outputShape[rank - 1]
        let columnMap = (0..<outputColumns).map { index($0, rank - 1) }
        self.columnMap = columnMap
        let factor = inputColumns > 0 ? outputColumns / inputColumns : 0
        let repeats = factor >= 1 && factor * inputColumns == outputColumns
            && columnMap.enumerated().allSatisfy { $0.element == $0.offset / factor }
        columnRepeat = repeats ? factor : 0
        var starts: [Int] = [], lengths: [Int] = [], sources: [Int] = []
        for y in 0..<outputRows {
            let source = index(y, rank - 2)
            if let last = sources.last, last == source {
                lengths[lengths.count - 1] += 1
            } else {
                starts.append(y); lengths.append(1); sources.append(source)
            }
        }
        rowRunStarts = starts
        rowRunLengths = lengths
        rowRunSources = sources
    }

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        let source = inputs[0]
        let destination = outputs[0]
        let planes = outerShape.reduce(1, *)
        let runs = rowRunStarts.count
        guard planes > 0, runs > 0, outputColumns > 0 else { return }
        let planeSize = outputRows * outputColumns
        let work = max(1, planeSize / runs)
        parallelFor(planes * runs, grain: max(1, StridedCopy.grainElements / work)) { unit in
            let plane = unit / runs
            let run = unit - plane * runs
            var remaining = plane
            var offset = 0
            var axis = outerShape.count - 1
            while axis >= 0 {
                let size = outerShape[axis]
                offset += outerMaps[outerMapStarts[axis] + remaining % size] * outerStrides[axis]
                remaining /= size
                axis -= 1
            }
            let from = source + offset + rowRunSources[run] * inputColumns
            let first = destination + plane * planeSize + rowRunStarts[run] * outputColumns
            if columnRepeat > 0 {
                var position = 0
                for x in 0..<inputColumns {
                    let value = from[x]
                    for _ in 0..<columnRepeat {
                        first[position] = value
                        position += 1
                    }
                }
            } else {
                for j in 0..<outputColumns { first[j] = from[columnMap[j]] }
            }
            var row = 1
            while row < rowRunLengths[run] {
                (first + row * outputColumns).update(from: first, count: outputColumns)
                row += 1
            }
        }
    }
}

/// Bilinear resampling of the last two axes (a 1-d input is one row). Leading axes must keep
/// their size. Per output row and column the two source indices and the weight of the
/// second are precomputed.
struct LinearResizeKernel: Kernel {
    let planes: Int
    let inputRows: Int
    let inputColumns: Int
    let outputRows: Int
    let outputColumns: Int
    let rowLow: [Int], rowHigh: [Int], rowWeight: [Float]
    let columnLow: [Int], columnHigh: [Int], columnWeight: [Float]

    init(_ settings: ResizeSettings, context: NodeContext) throws {
        let rank = settings.inputShape.count
        guard rank >= 1 else { throw context.error("linear resize needs an input of rank 1 or more") }
        for axis in 0..<max(0, rank - 2) {
            let length = settings.inputShape[axis]
            guard settings.outputShape[axis] == length, settings.scales[axis] == 1 || length == 1 else {
                throw context.error("linear resize only scales the last two dimensions (axis \(axis) changes)",
                                    kind: .unsupportedOperator)
            }
        }
        func table(_ axis: Int?, input: Int, output: Int) -> ([Int], [Int], [Float]) {
            var low: [Int] = [], high: [Int] = [], weight: [Float] = []
            for x in 0..<output {
                guard let axis, input > 1 else { low.append(0); high.append(0); weight.append(0); continue }
                let source = min(max(settings.sourceCoordinate(x, axis: axis), 0), Double(input - 1))
                let base = Int(source.rounded(.down))
                low.append(base)
                high.append(min(base + 1, input - 1))
                weight.append(Float(source - Double(base)))
            }
            return (low, high, weight)
        }
        inputColumns = settings.inputShape[rank - 1]
        outputColumns = settings.outputShape[rank - 1]
        inputRows = rank >= 2 ? settings.inputShape[rank - 2] : 1
        outputRows = rank >= 2 ? settings.outputShape[rank - 2] : 1
        planes = settings.inputShape[..<max(0, rank - 2)].reduce(1, *)
        (rowLow, rowHigh, rowWeight) = table(rank >= 2 ? rank - 2 : nil, input: inputRows, output: outputRows)
        (columnLow, columnHigh, columnWeight) = table(rank - 1, input: inputColumns, output: outputColumns)
    }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let source = inputs[0]
        let destination = outputs[0]
        guard outputColumns > 0, inputRows > 0, inputColumns > 0 else { return }
        let rows = planes * outputRows
        let outputRows = outputRows, inputRows = inputRows, inputColumns = inputColumns, outputColumns = outputColumns
        columnLow.withUnsafeBufferPointer { columnLow in
            columnHigh.withUnsafeBufferPointer { columnHigh in
                columnWeight.withUnsafeBufferPointer { columnWeight in
                    parallelFor(rows, grain: max(1, StridedCopy.grainElements / (4 * outputColumns))) { row in
                        let plane = row / outputRows
                        let y = row - plane * outputRows
                        let base = source + plane * inputRows * inputColumns
                        let top = base + rowLow[y] * inputColumns
                        let bottom = base + rowHigh[y] * inputColumns
                        let wy = rowWeight[y]
                        let to = destination + row * outputColumns
                        for x in 0..<outputColumns {
                            let x0 = columnLow[x], x1 = columnHigh[x], wx = columnWeight[x]
                            let upper = top[x0] + (top[x1] - top[x0]) * wx
                            let lower = bottom[x0] + (bottom[x1] - bottom[x0]) * wx
                            to[x] = upper + (lower - upper) * wy
                        }
                    }
                }
            }
        }
    }
}
