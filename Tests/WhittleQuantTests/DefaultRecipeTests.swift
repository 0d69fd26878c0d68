import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

/// The recipe `whittle quantize` uses when no technique is asked for.
@Suite("Default quantization recipe")
struct DefaultRecipeTests {
    @Test func eightBitWeightsGetPerChannelAdaRoundWithShortSchedule() {
        var recipe = QuantizationRecipe(weightBits: 8)
        recipe.applyDefaultTechniques()
        #expect(recipe.perChannel == true)
        #expect(recipe.adaRound)
        #expect(recipe.adaRoundIterations == QuantizationRecipe.defaultAdaRoundIterations8Bit)
        #expect(recipe.adaRoundIterations == 1000)
        #expect(!recipe.biasCorrection && !recipe.crossLayerEqualization && !recipe.sequentialMSE)
        #expect(recipe.scheme == .minMax)
    }

    @Test func sixteenBitWeightsAlsoUseTheShortSchedule() {
        var recipe = QuantizationRecipe(weightBits: 16, activationBits: 16)
        recipe.applyDefaultTechniques()
        #expect(recipe.adaRound)
        #expect(recipe.adaRoundIterations == 1000)
    }

    @Test func lowBitWeightsKeepAimetsIterationCount() {
        for bits in [4, 6, 7] {
            var recipe = QuantizationRecipe(weightBits: bits)
            recipe.applyDefaultTechniques()
            #expect(recipe.adaRound)
            #expect(recipe.adaRoundIterations == nil, "W\(bits): nil means AdaRoundOptions' 15 000")
        }
        #expect(AdaRoundOptions.defaultIterations(bitWidth: 4) == 15_000)
    }

    @Test func explicitChoicesSurvive() {
        var recipe = QuantizationRecipe(weightBits: 8, perChannel: false)
        recipe.adaRoundIterations = 250
        recipe.applyDefaultTechniques()
        #expect(recipe.perChannel == false)
        #expect(recipe.adaRoundIterations == 250)
    }

    @Test func recipeRoundTripsThroughJSONWithIterations() throws {
        var recipe = QuantizationRecipe(weightBits: 8)
        recipe.applyDefaultTechniques()
        let data = try JSONEncoder().encode(recipe)
        let decoded = try JSONDecoder().decode(QuantizationRecipe.self, from: data)
        #expect(decoded == recipe)
    }
}
