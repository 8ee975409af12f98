"""The model kinds Pippin refuses by name, each with a one-line reason.

These kinds carry no computation in the file, or one only Apple's frameworks
define: the runtime cannot reproduce Core ML's results for them, so ``load``
refuses them with the reason instead of guessing.
"""

from __future__ import annotations

__all__ = ["PROPRIETARY_KINDS"]

PROPRIETARY_KINDS: dict[str, str] = {
    "visionFeaturePrint": "its network ships inside Apple's Vision framework, not in the file",
    "audioFeaturePrint": "its network ships inside Apple's SoundAnalysis framework, not in the file",
    "wordTagger": "its tagger is a Create ML model only Apple's NaturalLanguage framework can run",
    "textClassifier": "its classifier is a Create ML model only Apple's NaturalLanguage framework can run",
    "gazetteer": "its lookup table is an opaque blob only Apple's NaturalLanguage framework reads",
    "wordEmbedding": "its embedding table is an opaque blob only Apple's NaturalLanguage framework reads",
    "customModel": "its computation is an app's own Objective-C/Swift class, which is not in the file",
    "mlProgram": "ML programs (Core ML 5+, .mlpackage) are a different format; Pippin runs Core ML 3 neural networks",
    "serializedModel": "its content is an opaque serialized blob only Apple's frameworks read",
}
