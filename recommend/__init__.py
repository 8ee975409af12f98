"""pippin.recommend."""
