import Testing
import WhittleIO

@Test func reexportsEngine() { #expect(Tensor.zeros([1]).count == 1) }
