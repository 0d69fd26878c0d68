import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS's worker threads busy-wait for about 2^28 cycles (~0.1 s) after every BLAS call
/// before they sleep (THREAD_TIMEOUT in OpenBLAS's thread server). Whittle alternates GEMMs
/// with its own parallel loops (depthwise convolutions, elementwise ops), so the spinning
/// workers take the cores those loops need: measured on EfficientNet-Lite0 at batch 32 on
/// 2 cores, the depthwise layers ran up to 1.8x slower. OpenBLAS reads
/// `OPENBLAS_THREAD_TIMEOUT` only when the library loads, so the executable sets it and
/// re-executes itself once, before doing anything else. A value the user set is kept.
enum OpenBLASEnvironment {
    static let variable = "OPENBLAS_THREAD_TIMEOUT"
    /// 2^4 cycles: workers go to sleep almost at once.
    static let shortTimeout = "4"

    static func ensureShortThreadTimeout() {
        #if canImport(Glibc)
        guard getenv(variable) == nil else { return }
        setenv(variable, shortTimeout, 1)
        // Re-run this very binary with the same arguments; on failure, carry on as we are.
        _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
        #endif
    }
}
