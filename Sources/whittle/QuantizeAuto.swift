import Foundation
import WhittleIO
import WhittleQuant

/// `whittle quantize --auto`: the AutoQuant search and its outputs.
extension Quantize {
    /// The recipe file: the chosen recipe and every candidate with its score and time.
    struct RecipeFile: Codable {
        var model: String
        var metric: String
        var floatScore: Double
        var allowedDrop: Double
        var metTarget: Bool
        var chosen: String
        var recipe: QuantizationRecipe
        var candidates: [AutoQuantCandidate]
        var seconds: Double
    }

    /// Runs the search when `--auto` is set (nil otherwise). The requested recipe supplies the
    /// config, bit widths, per-channel choice, overrides and batch size; its techniques are
    /// chosen by the search.
    func autoQuantize(graph: Graph, recipe: QuantizationRecipe, calibration: Dataset, evaluation: Dataset,
                      job: JobContext) throws -> AutoQuantResult? {
        guard auto else { return nil }
        guard allowedDrop.isFinite, allowedDrop >= 0, allowedDrop <= 100 else {
            throw WhittleError(.invalidArgument, "--allowed-drop", "must be in 0...100 points, got \(allowedDrop)")
        }
        let options = AutoQuantOptions(allowedDrop: allowedDrop / 100, adaRoundIterations: recipe.adaRoundIterations)
        return try AutoQuantization.search(graph: graph, base: recipe, calibration: calibration.inputs,
                                           evaluation: evaluation.inputs, labels: evaluation.labels, options: options, job: job)
    }

    /// Writes DIR/STEM.recipe.json; returns its path.
    func writeRecipe(_ result: AutoQuantResult, folder: URL, stem: String) throws -> String {
        let url = folder.appendingPathComponent("\(stem).recipe.json")
        let file = RecipeFile(model: model, metric: result.metric, floatScore: result.floatScore, allowedDrop: result.allowedDrop,
                              metTarget: result.metTarget, chosen: result.chosen.name, recipe: result.chosen.recipe,
                              candidates: result.candidates, seconds: result.seconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try AtomicFile.write(try encoder.encode(file), to: url)
        } catch let error as WhittleError {
            throw error
        } catch {
            throw WhittleError(.io, url.path, "cannot write the recipe (\(error.localizedDescription))")
        }
        return url.path
    }

    /// The candidates tried, one line each, the chosen one marked.
    func printAutoQuantTable(_ result: AutoQuantResult) {
        print(String(format: "AutoQuant (%@; float %.2f%%, allowed drop %.2f points):", result.metric,
                     result.floatScore * 100, result.allowedDrop * 100))
        let width = max(10, result.candidates.map(\.name.count).max() ?? 10)
        print("  " + "candidate".padding(toLength: width, withPad: " ", startingAt: 0) + "     score   change   seconds")
        for (index, candidate) in result.candidates.enumerated() {
            let mark = index == result.chosenIndex ? "*" : (candidate.meetsTarget ? "+" : " ")
            print(mark + " " + candidate.name.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "  %7.2f%%  %+6.2f  %8.1f", candidate.score * 100, -candidate.drop * 100, candidate.seconds))
        }
        print(result.metTarget
              ? "chose '\(result.chosen.name)' (within the allowed drop)"
              : "no candidate within the allowed drop; chose the best, '\(result.chosen.name)'")
    }
}
