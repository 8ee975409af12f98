"""``pippin.pipelines``: run, update and compose Core ML models on Linux."""
