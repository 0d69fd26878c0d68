/// Assigns arena offsets to tensors by liveness so that tensors whose lifetimes do not
/// overlap share memory.
///
/// Greedy-by-size placement (the "shared objects by size" strategy of mobile inference
/// engines): place the largest tensors first, each at the lowest offset where it overlaps no
/// already-placed tensor that is alive at the same time.
struct MemoryPlanner {
    struct Request {
        var size: Int          // floats
        var firstStep: Int     // step that writes it
        var lastStep: Int      // last step that reads it
    }

    /// Offsets (in floats) for each request, and the arena size they need.
    static func plan(_ requests: [Request], alignment: Int = 16) -> (offsets: [Int], arenaSize: Int) {
        let order = requests.indices.sorted { requests[$0].size > requests[$1].size || (requests[$0].size == requests[$1].size && $0 < $1) }
        var offsets = [Int](repeating: 0, count: requests.count)
        var placed: [Int] = []
        var arenaSize = 0
        for index in order {
            let request = requests[index]
            let size = (request.size + alignment - 1) / alignment * alignment
            // Intervals already taken by tensors alive at the same time, sorted by offset.
            let conflicts = placed
                .filter { other in requests[other].firstStep <= request.lastStep && request.firstStep <= requests[other].lastStep }
                .map { (offsets[$0], (requests[$0].size + alignment - 1) / alignment * alignment) }
                .sorted { $0.0 < $1.0 }
            var candidate = 0
            for (offset, length) in conflicts {
                if candidate + size <= offset { break }
                candidate = max(candidate, offset + length)
            }
            offsets[index] = candidate
            arenaSize = max(arenaSize, candidate + size)
            placed.append(index)
        }
        return (offsets, arenaSize)
    }
}
