"""Running untrusted generated code and its tests in a contained subprocess."""
