import Foundation
import Testing
import WhittleQuant
@testable import WhittleSession

@Suite struct LegacyProfileTests {
    /// A profile written by the workbench before the session kept WhittleQuant's recipe
    /// (saved with `whittle tui` at d28569d: recipe edited, a bit override, a ratio, a snapshot).
    static let legacyProfile = #"""
{
 "bitWidthOverrides": {
  "fc": {
   "weightBits": 7
  }
 },
 "calibrationData": "/work/main/SampleModels/digits-calib.npz",
 "compression": {
  "candidates": [
   0.1,
   0.2,
   0.3,
   0.4,
   0.5,
   0.6,
   0.7,
   0.8,
   0.9
  ],
  "defaultTechnique": "spatial-svd",
  "ignoredLayers": [],
  "ratios": {
   "fc": 0.8500000000000001
  },
  "techniques": {}
 },
 "evaluationData": "/work/main/SampleModels/digits-test.npz",
 "model": "/work/main/SampleModels/digits-cnn.onnx",
 "recipe": {
  "activationBits": 8,
  "adaround": false,
  "auto": false,
  "biasCorrection": false,
  "cle": true,
  "config": "default",
  "perChannel": false,
  "scheme": "percentile:99.99",
  "seqMSE": true,
  "weightBits": 6
 },
 "scores": {
  "metric": "accuracy",
  "tables": {}
 },
 "snapshots": [
  {
   "created": "2026-11-28T15:51:03.192Z",
   "metrics": {
    "layers": {
     "conv1": {
      "activationBits": 8,
      "macs": 36864,
      "ratio": 1,
      "weightBits": 6
     },
     "conv2": {
      "activationBits": 8,
      "macs": 294912,
      "ratio": 1,
      "weightBits": 6
     },
     "conv3": {
      "activationBits": 8,
      "macs": 1179648,
      "ratio": 1,
      "weightBits": 6
     },
     "conv4": {
      "activationBits": 8,
      "macs": 589824,
      "ratio": 1,
      "weightBits": 6
     },
     "fc": {
      "activationBits": 8,
      "macs": 544,
      "ratio": 0.8500000000000001,
      "weightBits": 7
     }
    },
    "macs": 2101792,
    "parameters": 61305,
    "sizeBytes": 48335
   },
   "name": "snapshot-1",
   "settings": {
    "bitWidthOverrides": {
     "fc": {
      "weightBits": 7
     }
    },
    "compression": {
     "candidates": [
      0.1,
      0.2,
      0.3,
      0.4,
      0.5,
      0.6,
      0.7,
      0.8,
      0.9
     ],
     "defaultTechnique": "spatial-svd",
     "ignoredLayers": [],
     "ratios": {
      "fc": 0.8500000000000001
     },
     "techniques": {}
    },
    "recipe": {
     "activationBits": 8,
     "adaround": false,
     "auto": false,
     "biasCorrection": false,
     "cle": true,
     "config": "default",
     "perChannel": false,
     "scheme": "percentile:99.99",
     "seqMSE": true,
     "weightBits": 6
    }
   }
  }
 ],
 "ui": {
  "extra": {},
  "focusedPanel": "compression",
  "selectedLayer": "fc",
  "theme": "dark"
 },
 "version": 1
}
"""#

    @Test func profilesFromTheSessionOwnRecipeFormatStillLoad() throws {
        let (session, version) = try SessionProfile.decode(Data(LegacyProfileTests.legacyProfile.utf8), file: "legacy.json")
        #expect(version == 1)
        let expected = QuantizationRecipe(config: "default", scheme: .percentile(99.99), weightBits: 6, activationBits: 8,
                                          perChannel: nil, crossLayerEqualization: true, biasCorrection: false, adaRound: false,
                                          sequentialMSE: true)
        #expect(session.recipe == expected)
        #expect(!session.autoQuant)
        #expect(session.bitWidthOverrides == ["fc": BitWidthOverride(weightBits: 7)])
        #expect(session.snapshots.map { $0.name } == ["snapshot-1"])
        #expect(session.snapshots.first?.settings.recipe == expected)
        #expect(session.compression.ratios.keys.sorted() == ["fc"])
        // Written again, the recipe keeps the same members and values.
        let rewritten = try #require(JSONSerialization.jsonObject(with: SessionProfile.encode(session)) as? [String: Any])
        let old = try #require(JSONSerialization.jsonObject(with: Data(LegacyProfileTests.legacyProfile.utf8)) as? [String: Any])
        let recipe = rewritten["recipe"] as? NSDictionary, oldRecipe = old["recipe"] as? NSDictionary
        #expect(recipe != nil)
        #expect(recipe == oldRecipe)
        #expect(try SessionProfile.decode(SessionProfile.encode(session), file: "again.json").0 == session)
    }

    @Test func recipeSettingsBeyondTheOldFormatRoundTrip() throws {
        var session = Session(modelPath: "m.onnx")
        session.recipe.adaRoundIterations = 500
        session.recipe.disabled = ["fc"]
        session.recipe.bitOverrides = ["w": 4]
        session.recipe.biasCorrectionSamples = 16
        session.recipe.activationBiasCorrection = true
        session.recipe.foldScaleShift = true
        let data = try SessionProfile.encode(session)
        #expect(try SessionProfile.decode(data, file: "p.json").0 == session)
        let written = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((written["recipe"] as? [String: Any])?["activationBiasCorrection"] as? Bool == true)
        #expect((written["recipe"] as? [String: Any])?["foldScaleShift"] as? Bool == true)
        let plain = try #require(JSONSerialization.jsonObject(with: SessionProfile.encode(Session(modelPath: "m.onnx"))) as? [String: Any])
        let keys = try #require((plain["recipe"] as? [String: Any])?.keys.sorted())
        #expect(keys == ["activationBits", "adaround", "auto", "biasCorrection", "cle", "config", "perChannel", "scheme", "seqMSE", "weightBits"])
    }
}
