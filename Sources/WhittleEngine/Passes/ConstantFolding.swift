/// Graph-level constant folding: nodes whose inputs are all known constants are evaluated
/// once and replaced by initializers holding their outputs.
///
/// Typical targets are the shape sub-graphs exporters emit (`Shape → Gather → Unsqueeze →
/// Concat → Reshape`), weight transposes and casts of constant tensors. The pass is
/// separate from the compiler's per-plan folding so that saved models get smaller too.
public enum ConstantFolding {
    /// Folds every node whose present (non-omitted) inputs are all initializers, repeating
    /// until nothing changes, so chains of constant nodes collapse completely.
    ///
    /// - Nodes whose operator has no `OperatorSpec` are left in place.
    /// - Each folded node's outputs become initializers, evaluated with
    ///   `OperatorRegistry.evaluate(node:inputs:opsetVersion:)` at the graph's opset.
    /// - Initializers that only fed folded nodes (and folded intermediate values) are
    ///   dropped once no remaining node reads them, unless they are graph outputs (or
    ///   declared graph inputs).
    ///
    /// - Returns: the folded graph and the names of the folded nodes, in folding order.
    /// - Throws: the evaluation error of a node that cannot be evaluated (invalid
    ///   attributes, mismatched shapes), since compiling the graph would fail the same way.
    public static func fold(_ graph: Graph) throws -> (graph: Graph, foldedNodes: [String]) {
        var result = graph
        var folded: [String] = []
        // Tensors touched by folding: candidates for removal at the end.
        var candidates: Set<String> = []
        var remaining = graph.nodes
        var changed = true
        while changed {
            changed = false
            var kept: [Node] = []
            kept.reserveCapacity(remaining.count)
            for node in remaining {
                guard let outputs = try evaluateIfConstant(node, initializers: result.initializers,
                                                           opsetVersion: graph.opsetVersion) else {
                    kept.append(node)
                    continue
                }
                for (name, tensor) in outputs { result.initializers[name] = tensor }
                candidates.formUnion(node.inputs.filter { !$0.isEmpty })
                candidates.formUnion(outputs.map(\.name))
                folded.append(node.name)
                changed = true
            }
            remaining = kept
        }
        result.nodes = remaining

        // Graph outputs stay, and so do declared inputs (dropping an initializer that is
        // also declared as an input would turn it into a runtime input).
        var referenced = Set(graph.outputs.map(\.name)).union(graph.inputs.map(\.name))
        for node in remaining { referenced.formUnion(node.inputs) }
        for name in candidates where !referenced.contains(name) {
            result.initializers[name] = nil
        }
        return (result, folded)
    }

    /// The node's named outputs when it can be folded now, nil when it must stay.
    private static func evaluateIfConstant(_ node: Node, initializers: [String: Tensor],
                                           opsetVersion: Int) throws -> [(name: String, tensor: Tensor)]? {
        guard OperatorRegistry.spec(for: node.opType) != nil, node.domain.isEmpty || node.domain == "ai.onnx" else {
            return nil
        }
        var inputs: [Tensor?] = []
        inputs.reserveCapacity(node.inputs.count)
        for name in node.inputs {
            if name.isEmpty {
                inputs.append(nil)
            } else if let tensor = initializers[name] {
                inputs.append(tensor)
            } else {
                return nil
            }
        }
        let values = try OperatorRegistry.evaluate(node: node, inputs: inputs, opsetVersion: opsetVersion)
        var outputs: [(name: String, tensor: Tensor)] = []
        for (index, name) in node.outputs.enumerated() where !name.isEmpty {
            guard index < values.count else {
                throw WhittleError(.invalidModel, "node '\(node.name)' (\(node.opType))",
                                   "constant folding produced \(values.count) outputs, the node declares \(node.outputs.count)")
            }
            outputs.append((name, values[index]))
        }
        return outputs
    }
}
