import WhittleEngine

/// A way of cutting a layer's multiply-accumulates (AIMET's three compression schemes).
public enum CompressionTechnique: String, Sendable, Codable, CaseIterable {
    /// k x k conv -> (k x 1 conv, r filters) then (1 x k conv); Gemm -> two Gemms.
    case spatialSVD = "spatial-svd"
    /// conv -> (1 x 1 conv, r filters) then the original k x k conv; Gemm -> two Gemms.
    case weightSVD = "weight-svd"
    /// Drop input channels of a conv (and the matching output channels upstream), then refit
    /// the conv's weights by least squares.
    case channelPruning = "channel-pruning"
}

/// One layer to compress: `ratio` is the fraction of the layer's MACs kept, in (0, 1].
public struct LayerChoice: Sendable, Codable, Hashable {
    /// Node name of the Conv or Gemm.
    public var layer: String
    public var technique: CompressionTechnique
    /// Fraction of the layer's MACs kept, in (0, 1].
    public var ratio: Double

    public init(layer: String, technique: CompressionTechnique, ratio: Double) {
        self.layer = layer
        self.technique = technique
        self.ratio = ratio
    }
}

/// Whether a layer can be compressed with a technique, and its cost before compression.
public struct LayerEligibility: Sendable, Codable, Equatable {
    /// Node name.
    public var layer: String
    public var opType: String
    public var technique: CompressionTechnique
    public var eligible: Bool
    /// Why the layer is not eligible (nil when it is).
    public var reason: String?
    /// Multiply-accumulates at batch 1.
    public var macs: Int
    /// Learned parameters (weights and bias).
    public var parameters: Int

    public init(layer: String, opType: String, technique: CompressionTechnique, eligible: Bool, reason: String?,
                macs: Int, parameters: Int) {
        self.layer = layer
        self.opType = opType
        self.technique = technique
        self.eligible = eligible
        self.reason = reason
        self.macs = macs
        self.parameters = parameters
    }
}

/// Settings shared by every technique.
public struct CompressionOptions: Sendable {
    /// Ranks (SVD) and kept channels (pruning) are rounded up to a multiple of this, never
    /// above the full size. Must be at least 1.
    public var rankMultiplicity: Int = 1
    /// Model inputs (batch along dimension 0) used for least-squares weight reconstruction;
    /// nil skips reconstruction.
    public var reconstructionInputs: [String: Tensor]?
    /// Batch size for collecting activations during reconstruction.
    public var batchSize: Int = 32
    /// With reconstruction inputs, truncate every SVD split in the input-whitened space (see
    /// `SVDWhitening`: best rank-k for the layer's output on that data, not for its weight)
    /// and refit its second factor by least squares against the original layer's output.
    public var reconstructSVD: Bool = true
    /// Activations of the graph being compressed over `reconstructionInputs`, so that
    /// reconstruction runs only the changed part of the graph (see `ActivationSource`).
    /// Must have been built for that graph and those inputs.
    public var activations: ActivationSource?
    /// Ratios of a layer sweep (`Compressor.sweep`) whose reconstruction passes run at the
    /// same time, each on one engine thread (see `VariantWorkers`; set above 1 only when
    /// nothing else uses the engine meanwhile).
    public var parallelVariants: Int = 1

    public init(rankMultiplicity: Int = 1, reconstructionInputs: [String: Tensor]? = nil, batchSize: Int = 32,
                reconstructSVD: Bool = true) {
        self.rankMultiplicity = rankMultiplicity
        self.reconstructionInputs = reconstructionInputs
        self.batchSize = batchSize
        self.reconstructSVD = reconstructSVD
    }
}

/// What happened to one compressed layer, with costs measured on the compressed graph (batch 1).
public struct LayerOutcome: Sendable, Codable, Equatable {
    public var layer: String
    public var technique: CompressionTechnique
    public var requestedRatio: Double
    /// Rank (SVD) or input channels (pruning) kept.
    public var kept: Int
    /// Full rank (SVD) or original input channels (pruning).
    public var original: Int
    public var macsBefore: Int
    public var macsAfter: Int
    public var parametersBefore: Int
    public var parametersAfter: Int
    /// Names of the nodes that replace the layer (SVD: two nodes; pruning: the layer itself).
    public var newNodes: [String]

    public init(layer: String, technique: CompressionTechnique, requestedRatio: Double, kept: Int, original: Int,
                macsBefore: Int, macsAfter: Int, parametersBefore: Int, parametersAfter: Int, newNodes: [String]) {
        self.layer = layer
        self.technique = technique
        self.requestedRatio = requestedRatio
        self.kept = kept
        self.original = original
        self.macsBefore = macsBefore
        self.macsAfter = macsAfter
        self.parametersBefore = parametersBefore
        self.parametersAfter = parametersAfter
        self.newNodes = newNodes
    }
}

/// A compressed graph and what was done to each layer.
public struct CompressionOutcome: Sendable {
    public var graph: Graph
    public var layers: [LayerOutcome]
    /// Per-layer and total cost of the input graph at batch 1 (set by `Compressor.compress`).
    public var baselineCost: ModelCost?
    /// Per-layer and total cost of the compressed graph at batch 1 (set by `Compressor.compress`).
    public var cost: ModelCost?

    public init(graph: Graph, layers: [LayerOutcome], baselineCost: ModelCost? = nil, cost: ModelCost? = nil) {
        self.graph = graph
        self.layers = layers
        self.baselineCost = baselineCost
        self.cost = cost
    }
}
