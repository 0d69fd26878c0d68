extension OperatorRegistry {
    static let elementwiseOperators: [OperatorSpec] = []
}
