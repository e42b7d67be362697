"""Audio front end: decoding, resampling, features, phonemes, microphone."""
