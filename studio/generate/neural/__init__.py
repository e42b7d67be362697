"""The neural generator: model inputs, training corpus, model, training and runners (issue 6)."""
