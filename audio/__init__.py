"""pippin.audio."""
