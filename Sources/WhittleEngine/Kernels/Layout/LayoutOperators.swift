extension OperatorRegistry {
    static let layoutOperators: [OperatorSpec] = []
}
