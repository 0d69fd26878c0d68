/// Copies a strided view of an input into a contiguous, row-major output:
///
///     out[i_0, ..., i_k] = in[offset + Σ_d i_d * strides[d]]
///
/// Transpose (permuted strides), Slice (strides times steps, possibly negative), Expand
/// (stride 0 on broadcast dimensions) and Split (a slice per output) are all such views.
///
/// At build time the view is simplified: dimensions of size 1 are dropped and neighbouring
/// dimensions that are contiguous with each other are merged, so e.g. an NCHW→NHWC
/// transpose becomes a batch of 2-D transposes `[N, C, H·W] → [N, H·W, C]`. The copy then
/// takes one of four paths, chosen once:
/// - `whole`: the view is the input itself (one `memcpy`);
/// - `rows`: the innermost stride is 1 (one `memcpy` per output row);
/// - `tiled`: the innermost stride is not 1 but the next one is (a transpose of the last two
///   dimensions), copied in cache-sized tiles;
/// - `gather`: anything else (strided inner loop).
/// Rows or tiles are spread over the engine's threads with `parallelFor`.
struct StridedCopy: Sendable, Equatable {
    enum Path: Sendable, Equatable { case whole, rows, tiled, gather, empty }

    /// Simplified output shape (rank ≥ 1) and the input stride of each of its dimensions.
    let shape: [Int]
    let strides: [Int]
    let offset: Int
    let count: Int
    let path: Path

    /// Side of the square tiles of the `tiled` path.
    static let tile = 32
    /// Elements a thread should copy at least before work is split.
    static let grainElements = 16_384

    init(shape: [Int], strides: [Int], offset: Int) {
        let count = shape.reduce(1, *)
        self.count = count
        self.offset = offset
        var simpleShape: [Int] = []
        var simpleStrides: [Int] = []
        for (size, stride) in zip(shape, strides) where size != 1 {
            if let lastSize = simpleShape.last, let lastStride = simpleStrides.last,
               lastStride == stride * size {
                simpleShape[simpleShape.count - 1] = lastSize * size
                simpleStrides[simpleStrides.count - 1] = stride
            } else {
                simpleShape.append(size)
                simpleStrides.append(stride)
            }
        }
        if simpleShape.isEmpty {
            simpleShape = [1]
            simpleStrides = [1]
        }
        self.shape = simpleShape
        self.strides = simpleStrides
        let rank = simpleShape.count
        if count == 0 {
            path = .empty
        } else if rank == 1 && simpleStrides[0] == 1 {
            path = .whole
        } else if simpleStrides[rank - 1] == 1 {
            path = .rows
        } else if rank >= 2 && simpleStrides[rank - 2] == 1 && simpleStrides[rank - 1] != 0 {
            path = .tiled
        } else {
            path = .gather
        }
    }

    /// Input offset of output row `row` (all dimensions but the last).
    @inline(__always)
    func rowOffset(_ row: Int, dimensions: Int) -> Int {
        var remaining = row
        var position = offset
        var axis = dimensions - 1
        while axis >= 0 {
            let size = shape[axis]
            position += (remaining % size) * strides[axis]
            remaining /= size
            axis -= 1
        }
        return position
    }

    func copy<T>(from source: UnsafePointer<T>, to destination: UnsafeMutablePointer<T>) {
        let rank = shape.count
        let inner = shape[rank - 1]
        let innerStride = strides[rank - 1]
        switch path {
        case .empty:
            return
        case .whole:
            copyElements(source + offset, destination, count)
        case .rows:
            let rows = count / inner
            parallelFor(rows, grain: max(1, Self.grainElements / inner)) { row in
                let from = source + rowOffset(row, dimensions: rank - 1)
                (destination + row * inner).update(from: from, count: inner)
            }
        case .gather:
            let rows = count / inner
            parallelFor(rows, grain: max(1, Self.grainElements / inner)) { row in
                let from = source + rowOffset(row, dimensions: rank - 1)
                let to = destination + row * inner
                var position = 0
                for j in 0..<inner {
                    to[j] = from[position]
                    position += innerStride
                }
            }
        case .tiled:
            // out[outer, i, j] = in[base(outer) + i + j * innerStride]
            let height = shape[rank - 2]
            let planes = count / (inner * height)
            let tile = Self.tile
            let tilesPerPlane = (height + tile - 1) / tile
            parallelFor(planes * tilesPerPlane, grain: max(1, Self.grainElements / (tile * inner))) { unit in
                let plane = unit / tilesPerPlane
                let i0 = (unit % tilesPerPlane) * tile
                let i1 = min(height, i0 + tile)
                let from = source + rowOffset(plane, dimensions: rank - 2)
                let to = destination + plane * height * inner
                var j0 = 0
                while j0 < inner {
                    let j1 = min(inner, j0 + tile)
                    for i in i0..<i1 {
                        let row = to + i * inner
                        var position = i + j0 * innerStride
                        for j in j0..<j1 {
                            row[j] = from[position]
                            position += innerStride
                        }
                    }
                    j0 = j1
                }
            }
        }
    }
}

/// Routine producing output `k` as the strided view `views[k]` of input 0.
struct StridedViewRoutine: LayoutRoutine {
    let views: [StridedCopy]

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        for (index, view) in views.enumerated() where index < outputs.count {
            view.copy(from: inputs[0], to: outputs[index])
        }
    }
}

/// Routine copying input 0 unchanged to output 0 (Reshape, Flatten, Squeeze, Unsqueeze and
/// float-to-float Cast). The compiler may alias the two buffers, which makes this free.
struct PlainCopyRoutine: LayoutRoutine {
    let count: Int

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        copyElements(inputs[0], outputs[0], count)
    }
}
