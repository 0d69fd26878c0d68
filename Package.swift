// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "whittle",
    products: [
        .executable(name: "whittle", targets: ["whittle"]),
        .library(name: "WhittleEngine", targets: ["WhittleEngine"]),
        .library(name: "WhittleIO", targets: ["WhittleIO"]),
        .library(name: "WhittleSession", targets: ["WhittleSession"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // System libraries: OpenBLAS (cblas + our own LAPACK prototypes) and ncursesw.
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CNCursesW", pkgConfig: "ncursesw",
            providers: [.apt(["libncursesw5-dev"])]),
        // Engine: tensors, graph IR, kernels, compiled plans, cost model.
        // Vectorised inner loops (AVX2+FMA chosen at run time) for the engine's direct kernels.
        .target(name: "CWhittleKernels"),
        .target(name: "WhittleEngine", dependencies: ["COpenBLAS", "CWhittleKernels"]),
        // Model and data I/O: ONNX (swift-protobuf), NumPy .npy/.npz.
        .target(
            name: "WhittleIO",
            dependencies: [
                "WhittleEngine",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]),
        // Quantization: encodings, analyzers, quantsim configs, simulation, PTQ techniques.
        .target(name: "WhittleQuant", dependencies: ["COpenBLAS", "CWhittleKernels", "WhittleEngine", "WhittleIO"]),
        // Session profiles, background jobs, snapshot comparison and the HTML report.
        .target(name: "WhittleSession", dependencies: ["WhittleEngine", "WhittleIO", "WhittleQuant"]),
        // Compression: spatial SVD, weight SVD, channel pruning with winnowing and reconstruction.
        .target(name: "WhittleCompress", dependencies: ["WhittleEngine", "WhittleIO", "COpenBLAS"]),
        // Workbench core: state, update, render, themes, widgets (no ncurses).
        .target(name: "WhittleTUI", dependencies: ["WhittleEngine", "WhittleIO", "WhittleQuant", "WhittleSession"]),
        // Workbench terminal backend: the only ncurses user.
        .target(name: "WhittleTerminal", dependencies: ["WhittleTUI", "CNCursesW"]),
        // Workbench services wired to the compression and quantization libraries.
        .target(name: "WhittleWorkbench", dependencies: ["WhittleEngine", "WhittleIO", "WhittleQuant", "WhittleCompress", "WhittleSession", "WhittleTUI"]),
        .executableTarget(
            name: "whittle",
            dependencies: [
                "WhittleEngine", "WhittleIO", "WhittleQuant", "WhittleSession", "WhittleCompress",
                "WhittleTUI", "WhittleTerminal", "WhittleWorkbench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "WhittleEngineTests", dependencies: ["WhittleEngine"]),
        .testTarget(name: "WhittleQuantTests", dependencies: ["WhittleQuant", "WhittleEngine", "CWhittleKernels"], exclude: ["Fixtures"]),
        .testTarget(name: "WhittleSessionTests", dependencies: ["WhittleSession", "WhittleQuant", "WhittleEngine", "WhittleIO"]),
        .testTarget(name: "WhittleCompressTests", dependencies: ["WhittleCompress", "WhittleIO", "WhittleEngine"]),
        .testTarget(name: "WhittleTUITests", dependencies: ["WhittleTUI", "WhittleSession", "WhittleQuant", "WhittleEngine", "WhittleIO"], exclude: ["Golden"]),
        .testTarget(name: "WhittleWorkbenchTests", dependencies: ["WhittleWorkbench", "WhittleTUI", "WhittleSession", "WhittleQuant", "WhittleCompress", "WhittleEngine", "WhittleIO"]),
        .testTarget(name: "WhittleIOTests", dependencies: ["WhittleIO", "WhittleEngine"], exclude: ["Fixtures"]),
    ]
)
