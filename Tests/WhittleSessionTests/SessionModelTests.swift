import Foundation
import Testing
@testable import WhittleSession

@Suite struct SessionModelTests {
    @Test func rangeSchemeTextRoundTrips() {
        for scheme in [RangeScheme.minMax, .sqnr, .mse, .percentile(99.99), .percentile(99)] {
            #expect(RangeScheme(parsing: scheme.description) == scheme)
        }
        #expect(RangeScheme(parsing: "percentile:0") == nil)
        #expect(RangeScheme(parsing: "median") == nil)
    }
}
