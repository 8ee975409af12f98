"""Generated protobuf modules of the Core ML format (do not edit; see ``spec/regenerate.py``)."""
