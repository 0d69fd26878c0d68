import WhittleEngine

/// Entry points of the compression library.
public enum Compressor {
    /// Every Conv, ConvTranspose, Gemm and MatMul layer of `graph` with whether `technique`
    /// can compress it (and why not), and its MACs and parameters at batch 1.
    public static func eligibility(of graph: Graph, technique: CompressionTechnique) throws -> [LayerEligibility] {
        throw WhittleError(.unsupportedOperator, technique.rawValue, "compression is not yet supported in this build")
    }

    /// Compresses each chosen layer and returns the new graph with per-layer outcomes.
    public static func compress(_ graph: Graph, choices: [LayerChoice], options: CompressionOptions,
                                job: JobContext) throws -> CompressionOutcome {
        throw WhittleError(.unsupportedOperator, "compress", "compression is not yet supported in this build")
    }
}
