import WhittleEngine

/// A 128-bit content hash (two FNV-1a-style 64-bit streams over 64-bit words, with different
/// offsets and an extra shift-xor for diffusion) used to key the
/// score cache by model and evaluation set. Not cryptographic: it only has to tell models
/// and data sets apart, and it is stable across processes (no per-process seeding).
public struct Fingerprint: Sendable {
    private var first: UInt64 = 0xcbf2_9ce4_8422_2325
    private var second: UInt64 = 0x8422_2325_cbf2_9ce4
    private static let prime: UInt64 = 0x0000_0100_0000_01b3

    public init() {}

    public mutating func add(_ value: UInt64) {
        first = (first ^ value) &* Self.prime
        first ^= first >> 29
        second = (second ^ (value &+ 0x9e37_79b9_7f4a_7c15)) &* Self.prime
        second ^= second >> 31
    }

    public mutating func add(_ value: Int) { add(UInt64(bitPattern: Int64(value))) }

    public mutating func add(_ value: String) {
        add(value.utf8.count)
        for byte in value.utf8 {
            first = (first ^ UInt64(byte)) &* Self.prime
            second = (second ^ UInt64(byte ^ 0x5a)) &* Self.prime
        }
    }

    public mutating func add(_ values: [Float]) {
        add(values.count)
        for value in values { add(UInt64(value.bitPattern)) }
    }

    public mutating func add(_ tensor: Tensor) {
        add(tensor.elementType.rawValue)
        add(tensor.shape.count)
        for dimension in tensor.shape { add(dimension) }
        if tensor.isFloatingPoint { add(tensor.floats) } else {
            let ints = tensor.ints
            add(ints.count)
            for value in ints { add(UInt64(bitPattern: value)) }
        }
    }

    /// 32 hexadecimal digits.
    public var hex: String {
        let a = String(first, radix: 16)
        let b = String(second, radix: 16)
        return String(repeating: "0", count: 16 - a.count) + a + String(repeating: "0", count: 16 - b.count) + b
    }

    /// Hash of everything that affects a graph's outputs: nodes in order with their
    /// attributes, initializers (sorted by name), inputs, outputs and opset.
    public static func of(_ graph: Graph) -> String {
        var hash = Fingerprint()
        hash.add(graph.opsetVersion)
        for input in graph.inputs {
            hash.add(input.name)
            for dimension in input.dimensions { hash.add(dimension.description) }
        }
        for output in graph.outputs { hash.add(output.name) }
        for node in graph.nodes {
            hash.add(node.name); hash.add(node.opType); hash.add(node.domain)
            hash.add(node.inputs.count); for name in node.inputs { hash.add(name) }
            hash.add(node.outputs.count); for name in node.outputs { hash.add(name) }
            for key in node.attributes.keys.sorted() {
                hash.add(key)
                guard let attribute = node.attributes[key] else { continue }
                switch attribute {
                case .int(let v): hash.add("i"); hash.add(v)
                case .float(let v): hash.add("f"); hash.add(UInt64(v.bitPattern))
                case .string(let v): hash.add("s"); hash.add(v)
                case .ints(let v): hash.add("I"); hash.add(v.count); for x in v { hash.add(x) }
                case .floats(let v): hash.add("F"); hash.add(v)
                case .strings(let v): hash.add("S"); hash.add(v.count); for x in v { hash.add(x) }
                case .tensor(let t): hash.add("T"); hash.add(t)
                }
            }
        }
        for name in graph.initializers.keys.sorted() {
            hash.add(name)
            if let tensor = graph.initializers[name] { hash.add(tensor) }
        }
        return hash.hex
    }

    /// Hash of an evaluation set: every input (sorted by name) and the labels.
    public static func of(inputs: [String: Tensor], labels: [Int]?) -> String {
        var hash = Fingerprint()
        for name in inputs.keys.sorted() {
            hash.add(name)
            if let tensor = inputs[name] { hash.add(tensor) }
        }
        if let labels { hash.add("labels"); hash.add(labels.count); for label in labels { hash.add(label) } }
        return hash.hex
    }
}
