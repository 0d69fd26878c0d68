extension OperatorRegistry {
    static let linearOperators: [OperatorSpec] = []
}
