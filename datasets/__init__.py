"""pippin.datasets."""
