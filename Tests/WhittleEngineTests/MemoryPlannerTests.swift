import Testing
@testable import WhittleEngine

@Suite("Memory planner")
struct MemoryPlannerTests {
    typealias Request = MemoryPlanner.Request

    /// No two tensors alive at the same step may overlap in the arena.
    func assertNoOverlap(_ requests: [Request], _ offsets: [Int], alignment: Int = 16) {
        for i in requests.indices {
            for j in requests.indices where j > i {
                let a = requests[i], b = requests[j]
                let alive = a.firstStep <= b.lastStep && b.firstStep <= a.lastStep
                let disjoint = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i]
                #expect(!alive || disjoint, "tensors \(i) and \(j) overlap while both alive")
            }
        }
    }

    @Test func chainReusesTwoSlots() {
        // A chain a -> b -> c -> d: only two neighbours are alive at once.
        let requests = (0..<4).map { Request(size: 1000, firstStep: $0, lastStep: $0 + 1) }
        let (offsets, size) = MemoryPlanner.plan(requests)
        assertNoOverlap(requests, offsets)
        #expect(size == 2 * 1008)
    }

    @Test func residualKeepsSkipTensorAlive() {
        // x is read again at step 3 (residual Add), so it cannot share with b or c.
        let requests = [
            Request(size: 64, firstStep: 0, lastStep: 3),
            Request(size: 64, firstStep: 1, lastStep: 2),
            Request(size: 64, firstStep: 2, lastStep: 3),
            Request(size: 64, firstStep: 3, lastStep: 4),
        ]
        let (offsets, size) = MemoryPlanner.plan(requests)
        assertNoOverlap(requests, offsets)
        #expect(size == 3 * 64)
    }

    @Test func randomLifetimesNeverOverlap() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let requests = (0..<40).map { _ -> Request in
                let first = Int.random(in: 0..<30, using: &generator)
                return Request(size: Int.random(in: 1...500, using: &generator), firstStep: first,
                               lastStep: first + Int.random(in: 0..<6, using: &generator))
            }
            let (offsets, size) = MemoryPlanner.plan(requests)
            assertNoOverlap(requests, offsets)
            #expect(size <= requests.reduce(0) { $0 + ($1.size + 15) / 16 * 16 })
        }
    }
}
