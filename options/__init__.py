"""Command-line options: base, train and test, extended by the chosen model and dataset."""
