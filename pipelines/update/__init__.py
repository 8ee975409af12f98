"""pippin.pipelines.update: training and Core ML 3 on-device update semantics."""
